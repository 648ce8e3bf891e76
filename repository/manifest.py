"""The manifest: everything the service needs to know about one model version, and nothing it must guess.

A repository entry is ``<repository>/<name>/<version>/`` holding ``model.onnx`` and ``manifest.json``.
The exporter writes the manifest only after the model passed verification; the service refuses a model
whose file does not hash to ``sha256``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

SCHEMA_VERSION: Literal[1] = 1
MODEL_FILENAME = "model.onnx"
MANIFEST_FILENAME = "manifest.json"

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

# How many held-out samples a re-measured evaluation may differ by and still agree with the manifest.
# onnxruntime picks its vector kernels by CPU, so logits differ in their last bits between machines; a
# sample whose two best classes tie to within that rounding can flip. One flip is what that explains;
# two or more means the model, its file or the evaluation data changed.
EVALUATION_SAMPLE_SLACK = 1

QuantizationMode = Literal["int8", "fp16"]


FLOAT32_MAX = 3.4028234663852886e38


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGION_FEATURES = "region-features"


class TensorSpec(_Strict):
    """One graph input or output. A string dimension is dynamic and names its axis (e.g. ``"batch"``)."""

    name: str
    dtype: Literal["float32", "float16", "int64", "int32", "uint8"]
    shape: list[int | str]


class ModelIO(_Strict):
    """Which graph tensor plays which role.

    Classification: ``image`` in, ``scores`` out. Region features: ``image``, ``boxes`` (K, 4) as
    ``x1, y1, x2, y2`` in the model input's pixel frame, ``box_batch_indices`` (K,) int64 in;
    ``features`` (K, D) and optionally ``scores`` (K, classes) out.
    """

    image: TensorSpec
    boxes: TensorSpec | None = None
    box_batch_indices: TensorSpec | None = None
    scores: TensorSpec | None = None
    scores_are_probabilities: bool = False
    features: TensorSpec | None = None
    extra_outputs: list[TensorSpec] = Field(default_factory=list)


class Preprocessing(_Strict):
    """How an uploaded image becomes the model's input tensor, applied in this order.

    decode (EXIF orientation applied) -> ``color_mode`` -> resize -> ``pixel * scale`` ->
    ``(x - mean) / std`` per channel -> NCHW float32.

    Resize policies: ``stretch`` resizes to exactly ``height`` x ``width`` (boxes scale per axis);
    ``fit-height-pad-width`` keeps the aspect ratio at ``height`` rows, clips the width at ``width`` and
    pads the right side with ``pad_value`` (after normalization), as text-line recognizers expect.
    """

    # Every value here becomes float32 arithmetic on every pixel: NaN or infinity would make every score
    # NaN (served as null), so they are refused where the manifest is read, whoever wrote it.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    color_mode: Literal["L", "RGB", "BGR"]
    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)
    resize: Literal["stretch", "fit-height-pad-width"] = "stretch"
    interpolation: Literal["bilinear", "nearest", "bicubic"] = "bilinear"
    scale: float = 1.0 / 255.0
    mean: list[float]
    std: list[float]
    pad_value: float = 0.0

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "L" else 3

    @model_validator(mode="after")
    def _per_channel(self) -> Preprocessing:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values for color_mode {self.color_mode}")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        largest = (255 * abs(self.scale) + max(map(abs, self.mean))) / min(self.std)
        if not largest < FLOAT32_MAX or not abs(self.pad_value) < FLOAT32_MAX:
            raise ValueError(
                "scale, mean, std and pad_value must keep normalized pixels within float32's range "
                f"(a pixel could reach {largest:g})"
            )
        return self


class RoISettings(_Strict):
    """The RoI pooling inside a region model, as exported (ONNX ``RoiAlign`` or ``MaxRoiPool``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # maps every box

    op: Literal["RoiAlign", "MaxRoiPool"]
    output_size: tuple[int, int]
    spatial_scale: float = Field(gt=0)
    sampling_ratio: int = 0
    aligned: bool = False


class PoolingLayer(_Strict):
    """One pooling call seen while the exporter ran the model, and what export did with it."""

    path: str  # the module it runs in ("<root>" for the model's own forward)
    op: str  # the module class (``MaxPool2d``) or the function (``F.avg_pool2d``) called
    parameters: dict[str, JsonValue]
    input_shape: list[int]
    export: Literal["native", "rewritten", "refused"]
    note: str  # the ONNX form, the rewrite, or why it was refused


class Verification(_Strict):
    """The parity check the exporter ran before writing this entry."""

    reference: str  # what the ONNX outputs were compared against, e.g. "torch 2.13.0 eager"
    max_abs_error: float
    tolerance: float
    batch_sizes: list[int]
    box_counts: list[int] = Field(default_factory=list)
    onnx_checker: bool


class Quantization(_Strict):
    """How this graph was derived from a float32 export, and how closely it follows it.

    ``verification`` of such an entry compares it against ``float32_sha256``'s graph, not against PyTorch.
    """

    mode: QuantizationMode
    method: str  # the tool and its settings
    float32_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # the graph it was derived from
    calibration: str | None = None  # what int8 ranges were calibrated on; never the evaluation data
    calibration_samples: int = Field(default=0, ge=0)
    kept_float32: list[str] = Field(default_factory=list)  # nodes left in float32 on purpose (RoI, boxes)
    compared_on: str  # the real inputs the agreement and verification were measured on
    top1_agreement: float | None = None  # share of rows whose arg-max equals float32's; None: no scores
    agreement_floor: float | None = None  # the export refused anything below it


class Evaluation(_Strict):
    """A quality figure measured on held-out data, with the command that reproduces it."""

    metric: str
    value: float
    dataset: str
    split: str
    samples: int
    command: str

    def agrees_with(self, measured: float, samples: int) -> bool:
        """Whether a re-measurement on ``samples`` items reproduces this figure, allowing
        :data:`EVALUATION_SAMPLE_SLACK` items to differ (the value is a fraction of ``samples``)."""
        return samples == self.samples and round(abs(measured - self.value) * samples) <= (
            EVALUATION_SAMPLE_SLACK
        )


class Provenance(_Strict):
    source: Literal["trained", "converted", "imported"]
    description: str
    license: str
    weights_origin: str
    exporter: str
    opset: int
    torch_version: str | None = None
    onnx_version: str
    onnxruntime_version: str


class BatchingDefaults(_Strict):
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    max_queue_delay_ms: float = Field(default=2.0, ge=0, le=1000)


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    task: Task
    description: str
    model_file: str = MODEL_FILENAME
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    io: ModelIO
    preprocessing: Preprocessing
    labels: list[str]
    feature_dim: int | None = None
    roi: RoISettings | None = None
    batching: BatchingDefaults = BatchingDefaults()
    verification: Verification
    evaluations: list[Evaluation] = Field(default_factory=list)
    provenance: Provenance
    pooling: list[PoolingLayer] | None = None  # the export's pooling audit; None: exported without one
    quantization: Quantization | None = None  # None: the float32 graph as exported

    @model_validator(mode="after")
    def _task_shape(self) -> Manifest:
        if self.task is Task.CLASSIFICATION:
            if self.io.scores is None:
                raise ValueError("a classification model needs a scores output")
            if not self.labels:
                raise ValueError("a classification model needs labels")
        else:
            missing = [n for n in ("boxes", "box_batch_indices", "features") if getattr(self.io, n) is None]
            if missing:
                raise ValueError(f"a region-features model needs io.{', io.'.join(missing)}")
            if self.roi is None or self.feature_dim is None:
                raise ValueError("a region-features model needs roi settings and feature_dim")
        if self.io.scores is not None and not self.labels:
            raise ValueError("a scores output needs labels")
        return self
