"""A ResNet-18-size 224x224 classifier with global average pooling, for the compute-bound half of the
benchmark. Its weights are random (seeded): it measures serving speed, not accuracy, and says so in its
manifest. ``python -m bench resnet`` writes it into the git-ignored bench repository.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from poolserve.repository.manifest import BatchingDefaults, Preprocessing, Provenance, Task

NAME = "resnet18-gap"
IMAGE_SIZE = 224
NUM_CLASSES = 1000
SEED = 0
OPSET = 17
TOLERANCE = 1e-3


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.downsample(x))


class ResNet18GAP(nn.Module):
    """torchvision's ResNet-18 layout (11.7 M parameters, 1.8 GFLOPs at 224x224), written out here so
    the benchmark needs no torchvision."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        inplanes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1)]
            inplanes = planes
        self.layers = nn.Sequential(*layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.global_pool(self.layers(self.stem(images))), 1))


def build_model() -> ResNet18GAP:
    """Deterministic random weights; BatchNorm statistics randomized too so no layer is an identity."""
    torch.manual_seed(SEED)
    model = ResNet18GAP()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            nn.init.uniform_(module.running_mean, -0.1, 0.1)
            nn.init.uniform_(module.running_var, 0.5, 1.5)
    return model.eval()


def write_entry(repository: Path) -> Path:
    """Export to ``<repository>/resnet18-gap/1/`` with a manifest the service accepts; returns the folder."""
    import onnx
    import onnxruntime as ort

    from poolserve.export.entry_writer import write_entry as write_repository_entry
    from poolserve.export.manifest_builder import LOGITS, EntryDescription, exported_io, parity_verification

    model = build_model()
    example = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(SEED))
    exported = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        exported,  # type: ignore[arg-type]
        input_names=["images"],
        output_names=[LOGITS],
        dynamic_axes={"images": {0: "batch"}, LOGITS: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    data = exported.getvalue()
    onnx.checker.check_model(onnx.load_model_from_string(data))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    max_error = 0.0
    cases = []
    for batch in (1, 3):
        x = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            expected = model(x).numpy()
        (got,) = session.run([LOGITS], {"images": x.numpy()})
        max_error = max(max_error, float(np.abs(got - expected).max()))
        cases.append({"images": x.numpy()})
    if max_error > TOLERANCE:
        raise RuntimeError(f"exported ResNet differs from torch by {max_error}")
    entry = EntryDescription(
        name=NAME,
        version=1,
        description="ResNet-18-size classifier with global average pooling; BENCHMARK ONLY, random weights.",
        io=exported_io(Task.CLASSIFICATION, (3, IMAGE_SIZE, IMAGE_SIZE), NUM_CLASSES),
        preprocessing=Preprocessing(
            color_mode="RGB",
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225],
        ),
        labels=[f"class-{i:03d}" for i in range(NUM_CLASSES)],
        batching=BatchingDefaults(max_batch_size=8, max_queue_delay_ms=2.0),
        verification=parity_verification(f"torch {torch.__version__} eager", max_error, TOLERANCE, cases),
        provenance=Provenance(
            source="converted",
            description=f"random weights, torch.manual_seed({SEED}); for the benchmark only",
            license="MIT",
            weights_origin="random initialization (no training)",
            exporter="bench/resnet.py: torch.onnx.export(dynamo=False)",
            opset=OPSET,
            torch_version=torch.__version__,
            onnx_version=onnx.__version__,
            onnxruntime_version=ort.__version__,
        ),
    )
    write_repository_entry(repository, data, entry, overwrite=True)
    return repository / NAME / "1"
