"""export_model / export-model failures: one line naming what to fix, non-zero exit, nothing written."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from poolserve.cli import app
from poolserve.export import entry_writer
from poolserve.export.user_loading import UserModelError, build_module, load_factory, load_weights
from poolserve.export.user_model import export_model
from poolserve.ops import RoIAlign


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.AdaptiveMaxPool2d(2)
        self.head = nn.Linear(16, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.conv(images)).flatten(1))


class Noisy(Small):
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # not a function of its input alone
        return super().forward(images + torch.rand_like(images))


class BatchNormalized(Small):
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # scaled by the whole batch's maximum
        return super().forward(images / images.abs().max())


class RegionsBatchNormalized(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.roi = RoIAlign(2, spatial_scale=1.0, sampling_ratio=-1)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.roi(images / images.abs().max(), boxes, indices).flatten(1)


class LargeLogits(Small):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images) * 1e5


class FixedBatch(Small):
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # the batch of the example, traced as a constant
        return self.head(self.pool(self.conv(images)).view(2, -1))


class TorchvisionStyle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.roi = RoIAlign(2, spatial_scale=1.0, sampling_ratio=-1)

    def forward(self, images: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return self.roi(images, rois[:, 1:], rois[:, 0].long()).flatten(1)


class ShapeDependent(Small):
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # a kernel read from the input's shape
        y = self.conv(images)
        return self.head(
            nn.functional.avg_pool2d(y, kernel_size=(y.shape[2], y.shape[3])).flatten(1).repeat(1, 4)
        )


class ReturnsDict(Small):
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"logits": super().forward(images)}


class Fractional(Small):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.FractionalMaxPool2d(2, output_size=2)  # type: ignore[assignment]


class Regions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.roi = RoIAlign(2, spatial_scale=1.0, sampling_ratio=-1)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.roi(images, boxes, indices).flatten(1)


class Payload:
    """Stands for any pickled object a weights file might smuggle in."""


def _written(repository: Path) -> list[Path]:
    return sorted(repository.rglob("*")) if repository.exists() else []


@pytest.mark.parametrize(
    ("module", "options", "message"),
    [
        (Small(), {"input_shape": (3, 12, 12)}, "does not run on input (2, 3, 12, 12)"),
        (ReturnsDict(), {}, "returns (dict); a classification model returns a logits tensor"),
        (Fractional(), {}, "pooling layer 'pool': FractionalMaxPool2d: random regions"),
        (Noisy(), {}, "output logits: max abs error"),
        (
            BatchNormalized(),
            {},
            "differs from the same image run alone",
        ),
        (
            RegionsBatchNormalized(),
            {"task": "region-features"},
            "output features: image",
        ),
        (Small(), {"labels": ["a", "b"]}, "2 labels for 3 output classes"),
        (FixedBatch(), {}, "the exported graph fails in onnxruntime on batches of 1, 2, 7: "),
        (
            TorchvisionStyle(),
            {"task": "region-features"},
            "is called as forward(images, boxes, box_batch_indices)",
        ),
        (Small(), {"task": "detection"}, "task 'detection': use one of classification, region-features"),
        (Small(), {"input_shape": (1, 12)}, "input_shape (1, 12): give (channels, height, width)"),
        (Small(), {"color_mode": "rgb"}, "color mode 'rgb': use L, RGB or BGR"),
        (Small(), {"labels": "abc"}, "labels: give a list of names, one per class, not one string"),
        (Small(), {"labels": ["a", "b", "a"]}, "labels 'a' appear more than once"),
        (Small(), {"labels": ["a", " ", "b"]}, "label 2 of 3 is blank; every class needs a name"),
        (Small(), {"name": "My Net"}, "name 'My Net'"),
        (Small(), {"color_mode": "RGB"}, "--color RGB makes 3 channels; the input has 1"),
        (Small(), {"mean": [0.5, 0.5]}, "preprocessing"),
        (Small(), {"task": "region-features"}, "RoIAlign or RoIPool"),
        (
            Regions(),
            {},
            "missing 2 required positional arguments: 'boxes' and 'indices'; a region model? "
            "pass --task region-features (task='region-features' in Python)",
        ),
    ],
    ids=[
        "wrong-input",
        "not-a-tensor",
        "refused-pooling",
        "parity",
        "batch-dependent",
        "region-batch-dependent",
        "labels",
        "fixed-batch",
        "torchvision-style-region",
        "unknown-task",
        "short-shape",
        "lower-case-color",
        "labels-as-string",
        "repeated-label",
        "blank-label",
        "name",
        "color",
        "mean",
        "no-roi",
        "region-as-classifier",
    ],
)
def test_failures_name_what_to_fix_and_write_nothing(
    tmp_path: Path, module: nn.Module, options: dict[str, object], message: str
):
    arguments: dict[str, object] = {"name": "small", "input_shape": (1, 12, 12)} | options
    with pytest.raises(UserModelError) as failed:
        export_model(module, repository=tmp_path / "repo", **arguments)  # type: ignore[arg-type]
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)
    assert _written(tmp_path / "repo") == []


def test_large_outputs_say_what_float32_rounding_costs_and_a_wider_tolerance_accepts_them(tmp_path: Path):
    torch.manual_seed(0)
    model = LargeLogits()
    with pytest.raises(
        UserModelError, match=r"\(outputs up to [0-9.e+]+, where float32 values are .* apart\)"
    ):
        export_model(model, name="large", input_shape=(1, 12, 12), repository=tmp_path / "repo")
    manifest = export_model(
        model, name="large", input_shape=(1, 12, 12), repository=tmp_path / "repo", tolerance=0.1
    )
    assert manifest.verification.tolerance == 0.1


def test_a_file_as_repository_is_refused_before_anything_runs(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserModelError, match=r"repository .*a-file is a file, not a folder"):
        export_model(Small(), name="small", input_shape=(1, 12, 12), repository=tmp_path / "a-file")


def test_an_existing_entry_is_kept_unless_overwrite(tmp_path: Path):
    manifest = export_model(Small(), name="small", input_shape=(1, 12, 12), repository=tmp_path)
    before = (tmp_path / "small" / "1" / "model.onnx").read_bytes()
    with pytest.raises(UserModelError, match=r"already holds a model; pass --overwrite \(overwrite=True"):
        export_model(Small(), name="small", input_shape=(1, 12, 12), repository=tmp_path)
    assert (tmp_path / "small" / "1" / "model.onnx").read_bytes() == before
    again = export_model(Small(), name="small", input_shape=(1, 12, 12), repository=tmp_path, overwrite=True)
    assert again.sha256 != manifest.sha256  # a fresh Small() has other weights


def test_samples_join_the_parity_check(tmp_path: Path):
    samples = tmp_path / "samples"
    samples.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):  # more than the largest batch: checked in two batches, 7 and 2
        Image.fromarray(rng.integers(0, 256, (20, 16), dtype=np.uint8)).save(samples / f"{i}.png")
    manifest = export_model(
        Small(), name="small", input_shape=(1, 12, 12), repository=tmp_path / "repo", samples=samples
    )
    assert "sample images" in manifest.verification.reference
    assert manifest.verification.batch_sizes == [1, 2, 7]
    assert manifest.verification.max_abs_error <= 1e-5
    assert manifest.pooling is not None and [p.export for p in manifest.pooling] == ["native"]


def test_region_model_with_features_only(tmp_path: Path):
    manifest = export_model(
        Regions(), name="feat", task="region-features", input_shape=(3, 16, 16), repository=tmp_path
    )
    assert manifest.feature_dim == 12 and manifest.io.scores is None and manifest.labels == []
    assert manifest.verification.box_counts == [0, 1, 50]
    assert manifest.roi is not None and manifest.roi.sampling_ratio == 0  # torchvision's -1 is ONNX's 0


def test_factory_and_weights_errors(tmp_path: Path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anyone_has\n")
    with pytest.raises(UserModelError, match=r"broken\.py: cannot be imported: ModuleNotFoundError"):
        load_factory(f"{broken}:build")
    good = tmp_path / "good.py"
    good.write_text(
        textwrap.dedent("""
        from torch import nn
        def build():
            return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
        """)
    )
    assert isinstance(build_module(load_factory("torch.nn:Identity"), "torch.nn:Identity"), nn.Identity)
    with pytest.raises(UserModelError, match=r"returned int, not a torch\.nn\.Module"):
        build_module(lambda: 3, "three")  # type: ignore[arg-type, return-value]
    with pytest.raises(UserModelError, match=r"expected FILE\.py:FACTORY"):
        load_factory("net.py")
    with pytest.raises(UserModelError, match="has no callable 'missing'"):
        load_factory(f"{good}:missing")
    module = build_module(load_factory(f"{good}:build"), "good.py:build")
    state = module.state_dict()
    state["extra.weight"] = state.pop("0.weight")
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(UserModelError, match=r"missing keys 0\.weight; unexpected keys extra\.weight"):
        load_weights(module, tmp_path / "renamed.pt")
    torch.save({"0.weight": Payload()}, tmp_path / "pickled.pt")  # an arbitrary object: never unpickled
    with pytest.raises(UserModelError, match=r"holds pickled Python objects, not only tensors \(.*Payload"):
        load_weights(module, tmp_path / "pickled.pt")
    torch.save(module, tmp_path / "whole.pt")  # torch.save(model), the common slip
    with pytest.raises(UserModelError, match=r"Sequential.*a whole model saved with torch\.save\(model\)\?"):
        load_weights(module, tmp_path / "whole.pt")
    torch.save({"state_dict": module.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserModelError, match=r"holds one under 'state_dict': save that entry on its own"):
        load_weights(module, tmp_path / "checkpoint.pt")
    wider = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    torch.save(wider.state_dict(), tmp_path / "wider.pt")
    with pytest.raises(
        UserModelError, match=r"model's shapes: 2\.weight \(3, 8\) for \(2, 8\), 2\.bias \(3,\) for \(2,\)"
    ):
        load_weights(module, tmp_path / "wider.pt")


def test_the_command_fails_in_one_line_with_a_non_zero_exit(tmp_path: Path):
    net = tmp_path / "net.py"
    net.write_text("from torch import nn\ndef build():\n    return nn.Linear(4, 2)\n")
    torch.save({"weight": torch.zeros(2, 4)}, tmp_path / "net.pt")  # no bias
    command = [
        sys.executable,
        "-m",
        "poolserve",
        "export-model",
        f"{net}:build",
        "--weights",
        str(tmp_path / "net.pt"),
    ]
    command += ["--name", "net", "--input", "1x2x2", "--repository", str(tmp_path / "repo")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"export-model: {tmp_path / 'net.pt'}: weights do not match the model: missing keys bias"
    ]
    assert not (tmp_path / "repo").exists()


def test_the_console_script_imports_a_package_from_the_working_directory(tmp_path: Path):
    # The installed ``poolserve`` script, not ``python -m`` (whose sys.path has the working directory).
    package = tmp_path / "mypkg_cwd"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "netdef.py").write_text("from torch import nn\ndef build():\n    return nn.Linear(4, 2)\n")
    script = Path(sys.executable).with_name("poolserve")
    command = [str(script), "export-model", "mypkg_cwd.netdef:build", "--weights", "absent.pt"]
    command += ["--name", "net", "--input", "1x2x2", "--repository", "repo"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    # Imported and built: it got as far as the (deliberately missing) weights.
    assert done.stderr.strip().splitlines() == ["export-model: absent.pt: no such weights file"]
    assert done.returncode == 1


def test_a_package_import_leaves_sys_path_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "mypkg_path"
    package.mkdir()
    (package / "__init__.py").write_text("from torch import nn\nbuild = nn.Identity\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    try:
        assert isinstance(build_module(load_factory("mypkg_path:build"), "mypkg_path:build"), nn.Identity)
    finally:
        sys.modules.pop("mypkg_path", None)
    assert sys.path == before


def test_samples_are_decoded_as_the_service_decodes_them(tmp_path: Path):
    """A JPEG far larger than the input is decoded at reduced scale by the service: samples too."""
    from poolserve.export.user_loading import load_samples
    from poolserve.repository.manifest import Preprocessing
    from poolserve.service.imaging.preprocess import decode_and_preprocess

    samples = tmp_path / "samples"
    samples.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (240, 240), dtype=np.uint8)).save(samples / "big.jpg", quality=90)
    spec = Preprocessing(color_mode="L", height=12, width=12, mean=[0.5], std=[0.5])
    blob = (samples / "big.jpg").read_bytes()
    served, _ = decode_and_preprocess([blob], spec, 1 << 24, reduced_jpeg=True)
    full, _ = decode_and_preprocess([blob], spec, 1 << 24, reduced_jpeg=False)
    assert not np.array_equal(served, full)  # the reduced decode shows in the pixels
    np.testing.assert_array_equal(load_samples(samples, spec), served)


def test_a_labels_file_loses_its_byte_order_mark_and_may_not_repeat_a_label(tmp_path: Path):
    from poolserve.export.user_loading import load_labels

    (tmp_path / "labels.txt").write_text("\ufeffcat\ndog\n\n", encoding="utf-8")
    assert load_labels(tmp_path / "labels.txt") == ["cat", "dog"]
    (tmp_path / "twice.txt").write_text("cat\ndog\ncat\n", encoding="utf-8")
    with pytest.raises(UserModelError, match="labels 'cat' appear more than once"):
        load_labels(tmp_path / "twice.txt")


def test_an_export_failure_is_one_line_with_the_exporters_reason_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    with pytest.raises(UserModelError) as failed:
        export_model(ShapeDependent(), name="shape", input_shape=(1, 12, 12), repository=tmp_path / "repo")
    message = str(failed.value)
    assert message.startswith("ONNX export failed: SymbolicValueError: ") and "\n" not in message
    assert message.endswith(
        "because it is not constant. Please try to make things (e.g. kernel sizes) static if possible."
    )
    out, _ = capfd.readouterr()
    assert out == ""  # the exporter's graph dump went nowhere


def _disk_full(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("refusal", ["through-a-file", "disk-full"])
def test_an_unwritable_repository_is_one_line_and_leaves_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
):
    net = tmp_path / "net.py"
    net.write_text(
        "from torch import nn\ndef build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))\n"
    )
    (tmp_path / "a-file").write_text("")
    if refusal == "through-a-file":
        repository, reason = tmp_path / "a-file" / "repo", os.strerror(errno.ENOTDIR)
    else:  # the model file is written, then the manifest finds the disk full
        monkeypatch.setattr(entry_writer, "write_manifest", _disk_full)
        repository, reason = tmp_path / "repo" / "nested", os.strerror(errno.ENOSPC)
    command = ["export-model", f"{net}:build", "--name", "net", "--input", "1x2x2"]
    done = CliRunner().invoke(app, [*command, "--repository", str(repository)])
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        f"export-model: cannot write the model repository entry {repository / 'net' / '1'}: {reason}"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "net.py"]  # no repo/, no repo/nested/net/


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"cat\ndog\n", None),  # text: read as labels, not refused
        (
            "chat\nb\xe9b\xe9\n".encode("latin-1"),
            "not UTF-8 text; a labels file is UTF-8 text, one label per line",
        ),
        (
            b"PK\x03\x04\x00\x00\x08\x08\x00",
            "binary, not text; a labels file is UTF-8 text, one label per line",
        ),
        (None, "is a folder; a labels file is UTF-8 text, one label per line"),
    ],
    ids=["utf-8", "latin-1", "torch-archive", "folder"],
)
def test_a_labels_file_that_is_not_utf8_text_is_refused_in_one_line(
    tmp_path: Path, content: bytes | None, message: str | None
):
    from poolserve.export.user_loading import load_labels

    path = tmp_path / "labels.txt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    if message is None:
        assert load_labels(path) == ["cat", "dog"]
        return
    with pytest.raises(UserModelError) as refused:
        load_labels(path)
    assert str(refused.value).startswith(str(path)) and str(refused.value).endswith(message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"cat\ndog\n", "not a file torch.save wrote (it writes a zip archive); save the weights with"),
        (b"", "the weights file is empty"),
        (
            b"\x80\x02garbage",
            "not a state_dict torch.load(weights_only=True) accepts: Unsupported operand 103",
        ),
        (None, "is a folder; weights are the file torch.save(model.state_dict()) wrote"),
    ],
    ids=["text", "empty", "garbage-pickle", "folder"],
)
def test_weights_torch_save_did_not_write_are_named_plainly_and_weights_only_stays_true(
    tmp_path: Path, content: bytes | None, message: str
):
    path = tmp_path / "net.pt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(UserModelError) as refused:
        load_weights(nn.Linear(4, 2), path)
    assert message in str(refused.value)
    # A text file starting with "c" is no pickled class; and never pass on torch's advice to retry with
    # weights_only=False, which runs whatever code the file holds.
    assert "pickled" not in str(refused.value) and "False" not in str(refused.value)


def test_a_file_given_as_the_samples_folder_is_called_a_file(tmp_path: Path):
    from poolserve.export.user_loading import load_samples
    from poolserve.repository.manifest import Preprocessing

    (tmp_path / "one.png").write_bytes(b"")
    spec = Preprocessing(color_mode="L", height=4, width=4, mean=[0.5], std=[0.5])
    with pytest.raises(UserModelError, match=r"one\.png is a file; images are given as a folder of them"):
        load_samples(tmp_path / "one.png", spec)
    with pytest.raises(UserModelError, match=r"absent: no such folder of images"):
        load_samples(tmp_path / "absent", spec)
