"""MTCNN's pretrained ONet, from facenet-pytorch's wheel to two repository entries.

- ``mtcnn-onet``: a 48×48 face classifier (``no-face`` / ``face`` probabilities; ONet's softmax is in the
  graph), with ONet's 256-d dense layer, box regression and landmarks as further outputs.
- ``mtcnn-onet-regions``: the same network behind an RoIAlign that cuts each candidate box out of the
  whole photo (stretched to 512×512) at 48×48: one request scores many boxes.

The weights are never installed: ``facenet_pytorch/data/onet.pt`` is read from the pinned wheel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from poolserve.export.entry_writer import write_entry
from poolserve.export.manifest_builder import (
    EntryDescription,
    Rows,
    image_input,
    model_io,
    output_rows,
    parity_verification,
)
from poolserve.export.onet_cases import REGION_FRAME, classifier_cases, region_cases
from poolserve.export.onnx_export import GraphSignature, export_onnx, export_provenance
from poolserve.export.parity import InputCase, check_graph, compare
from poolserve.export.roi_symbolics import roi_settings
from poolserve.export.wheels import DEFAULT_WHEEL_CACHE, WheelMember, read_member
from poolserve.models.onet import (
    ONET_FEATURE_DIM,
    ONET_INPUT_SIZE,
    ONET_LABELS,
    ONET_MEAN,
    ONET_STD,
    ONet,
    ONetOutputs,
    ONetRegions,
    load_onet,
)
from poolserve.repository.manifest import Manifest, ModelIO, Preprocessing, RoISettings, Verification

ONET_WEIGHTS = WheelMember(
    project="facenet-pytorch",
    version="2.6.0",
    sha256="ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
    member="facenet_pytorch/data/onet.pt",
    license="MIT",
)
LICENSE = (
    "MIT (facenet-pytorch, Copyright (c) 2019 Timothy Esler; weights converted from MTCNN by "
    "Zhang, Zhang, Li and Qiao, 2016)"
)
CLASSIFIER_NAME = "mtcnn-onet"
REGIONS_NAME = "mtcnn-onet-regions"
OUTPUT_NAMES = ONetOutputs._fields  # scores, features, box_regression, landmarks
EXTRA_OUTPUTS = {"box_regression": 4, "landmarks": 10}


def onet_preprocessing(size: int) -> Preprocessing:
    """RGB, stretched to ``size``², ``(pixel - 127.5) / 128``: what MTCNN's third stage feeds ONet."""
    return Preprocessing(
        color_mode="RGB",
        height=size,
        width=size,
        resize="stretch",
        interpolation="bilinear",
        scale=1.0,
        mean=[ONET_MEAN] * 3,
        std=[ONET_STD] * 3,
    )


def pretrained_onet(wheel_cache: Path = DEFAULT_WHEEL_CACHE) -> ONet:
    return load_onet(read_member(ONET_WEIGHTS, wheel_cache).data)


# Tighter than the digit models' 1e-4; measured errors: docs/pretrained.md (python -m bench.parity_isa).
TOLERANCE = 1e-5
REFERENCE = f"torch {torch.__version__} eager (all four outputs; real photos and seeded noise)"
CLASSIFIER_SIGNATURE = GraphSignature(
    inputs=["images"],
    outputs=list(OUTPUT_NAMES),
    dynamic_axes={name: {0: "batch"} for name in ("images", *OUTPUT_NAMES)},
)
REGION_SIGNATURE = GraphSignature(
    inputs=["images", "boxes", "box_batch_indices"],
    outputs=list(OUTPUT_NAMES),
    dynamic_axes={"images": {0: "batch"}}
    | {n: {0: "boxes"} for n in ("boxes", "box_batch_indices", *OUTPUT_NAMES)},
)


def onet_io(frame: int, region: bool) -> ModelIO:
    """``images`` (and for regions ``boxes``, ``box_batch_indices``) in; scores, features, extras out."""
    rows: Rows = "boxes" if region else "batch"
    widths = {"scores": len(ONET_LABELS), "features": ONET_FEATURE_DIM, **EXTRA_OUTPUTS}
    out = {name: output_rows(name, rows, widths[name]) for name in OUTPUT_NAMES}
    return model_io(
        image_input(3, frame, frame),
        region=region,
        scores=out["scores"],
        scores_are_probabilities=True,  # ONet's softmax is part of the graph
        features=out["features"],
        extra_outputs=[out[name] for name in EXTRA_OUTPUTS],
    )


@dataclass(frozen=True)
class OnetEntry:
    name: str
    description: str
    model: torch.nn.Module
    frame: int
    cases: list[InputCase]
    signature: GraphSignature
    roi: RoISettings | None = None

    def describe(self, verification: Verification) -> EntryDescription:
        return EntryDescription(
            name=self.name,
            version=1,
            description=self.description,
            io=onet_io(self.frame, region=self.roi is not None),
            preprocessing=onet_preprocessing(self.frame),
            labels=list(ONET_LABELS),
            roi=self.roi,
            verification=verification,
            provenance=export_provenance(
                "converted",
                f"facenet-pytorch's pretrained ONet state dict in {type(self.model).__name__}",
                LICENSE,
                ONET_WEIGHTS.origin(),
            ),
        )


def onet_entries(onet: ONet) -> list[OnetEntry]:
    regions = ONetRegions(onet).eval()
    return [
        OnetEntry(
            CLASSIFIER_NAME,
            "MTCNN's ONet (pretrained, facenet-pytorch 2.6.0) as a 48×48 face / no-face classifier",
            onet,
            ONET_INPUT_SIZE,
            classifier_cases(),
            CLASSIFIER_SIGNATURE,
        ),
        OnetEntry(
            REGIONS_NAME,
            "MTCNN's ONet (pretrained, facenet-pytorch 2.6.0) scoring candidate face boxes of a photo: "
            f"each box is RoIAligned out of the {REGION_FRAME}×{REGION_FRAME} photo at 48×48",
            regions,
            REGION_FRAME,
            region_cases(),
            REGION_SIGNATURE,
            roi_settings(regions.roi),
        ),
    ]


def export_onet_entries(
    repository: Path, wheel_cache: Path = DEFAULT_WHEEL_CACHE, overwrite: bool = False
) -> list[Manifest]:
    """Write ``mtcnn-onet/1`` and ``mtcnn-onet-regions/1``, each only after its parity check passed."""
    written = []
    for entry in onet_entries(pretrained_onet(wheel_cache)):
        example = tuple(torch.from_numpy(array) for array in entry.cases[-1].values())
        proto = export_onnx(entry.model, example, entry.signature)
        check_graph(proto)
        parity = compare(proto, entry.model, entry.cases, TOLERANCE)  # raises ExportError above tolerance
        checked = parity_verification(REFERENCE, parity.max_abs_error, TOLERANCE, entry.cases)
        written.append(write_entry(repository, proto.SerializeToString(), entry.describe(checked), overwrite))
    return written
