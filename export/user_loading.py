"""Loading what a user brings: a factory from a file or module, a ``state_dict``, labels, sample images.

Every failure is a :class:`UserModelError` whose one-line message names the file and what to fix.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from poolserve.export.manifest_builder import check_labels
from poolserve.repository.manifest import Preprocessing

SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_MAX_SAMPLE_PIXELS = 64_000_000
_LISTED_KEYS = 5
# How a file torch.save wrote begins: a zip archive (torch >= 1.6), or a pickle of protocol 2 or later
# (older torch, or _use_new_zipfile_serialization=False). Anything else is no weights file at all.
_TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")
_LABELS_FILE = "a labels file is UTF-8 text, one label per line"


class UserModelError(Exception):
    """The model, its weights or the options cannot become an entry; the message says what to fix."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _import_file(path: Path) -> object:
    if not path.is_file():
        raise UserModelError(f"{path}: no such file")
    # A name of its own per file, so the user's module never shadows one of ours (or another user file).
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_poolserve_user_{path.stem}_{digest}", path)
    if spec is None or spec.loader is None:
        raise UserModelError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    # Sibling modules of the file (``from layers import Block``) import as they would when run there.
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(spec.name, None)
        raise UserModelError(f"{path}: cannot be imported: {one_line(exc)}") from exc
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _import_module(name: str) -> object:
    """``package.module`` as ``python -m`` would find it: the console script's ``sys.path`` lacks the
    working directory, where a user's own package usually sits. Added for this import only."""
    here = str(Path.cwd())
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise UserModelError(f"{name}: cannot be imported: {one_line(exc)}") from exc
    finally:
        if added:
            sys.path.remove(here)


def load_factory(target: str) -> Callable[[], nn.Module]:
    """``path/to/net.py:build`` or ``package.module:build``."""
    where, sep, attribute = target.rpartition(":")
    if not sep or not where or not attribute:
        raise UserModelError(f"{target!r}: expected FILE.py:FACTORY or package.module:FACTORY")
    module = _import_file(Path(where)) if where.endswith(".py") else _import_module(where)
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise UserModelError(f"{where} has no callable {attribute!r}")
    return factory


def build_module(factory: Callable[[], nn.Module], target: str) -> nn.Module:
    try:
        module = factory()
    except Exception as exc:
        raise UserModelError(f"{target}() failed: {one_line(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise UserModelError(f"{target}() returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    more = len(keys) - _LISTED_KEYS
    return f"{shown} (and {more} more)" if more > 0 else shown


def _require_torch_file(path: Path) -> None:
    """Refuse a file torch.save did not write before torch reads it: torch would unpickle a text file's
    first letter as an opcode and name whatever followed as a "global"."""
    if path.is_dir():
        raise UserModelError(f"{path} is a folder; weights are the file torch.save(model.state_dict()) wrote")
    if not path.exists():
        raise UserModelError(f"{path}: no such weights file")
    try:
        with path.open("rb") as file:
            start = file.read(4)
    except OSError as exc:
        raise UserModelError(f"{path}: cannot be read: {exc.strerror}") from exc
    if not start:
        raise UserModelError(f"{path}: the weights file is empty")
    if not start.startswith(_TORCH_FILE_STARTS):
        raise UserModelError(
            f"{path}: not a file torch.save wrote (it writes a zip archive); "
            "save the weights with torch.save(model.state_dict(), PATH)"
        )


def _load_refusal(exc: Exception) -> str:
    """torch's reason for refusing a file, without the advice around it: its weights_only errors suggest
    retrying with weights_only=False, which runs whatever code the file holds. Never relay that."""
    text = " ".join(str(exc).split())
    if "weights_only" not in text:
        return one_line(exc)
    reason = re.search(r"WeightsUnpickler error: (.*?)(?: Please use| Check the documentation|$)", text)
    return reason.group(1).rstrip(".") if reason else type(exc).__name__


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a ``state_dict`` with ``weights_only=True``: tensors only, never arbitrary pickled objects."""
    _require_torch_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:  # torch.save(model): a pickled module, which weights_only refuses to run
            raise UserModelError(
                f"{path}: holds pickled Python objects, not only tensors ({found.group(1)}); a whole "
                "model saved with torch.save(model)? save model.state_dict() instead"
            ) from exc
        raise UserModelError(
            f"{path}: not a state_dict torch.load(weights_only=True) accepts: {_load_refusal(exc)}"
        ) from exc
    if not _is_state_dict(state):
        nested = [k for k, v in state.items() if _is_state_dict(v)] if isinstance(state, dict) else []
        hint = f"; it holds one under {nested[0]!r}: save that entry on its own" if nested else ""
        raise UserModelError(
            f"{path}: expected a state_dict (parameter name -> tensor), got a {type(state).__name__} "
            f"holding other values{hint}"
        )
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [
            f"missing keys {_listed(missing)}" if missing else "",
            f"unexpected keys {_listed(unexpected)}" if unexpected else "",
        ]
        raise UserModelError(f"{path}: weights do not match the model: {'; '.join(p for p in parts if p)}")
    differ = [
        f"{k} {tuple(state[k].shape)} for {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if differ:
        raise UserModelError(f"{path}: weights do not match the model's shapes: {_listed(differ)}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserModelError(f"{path}: weights do not match the model: {one_line(exc)}") from exc


def _is_state_dict(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())


def _labels_text(path: Path) -> str:
    if path.is_dir():
        raise UserModelError(f"{path} is a folder; {_LABELS_FILE}")
    if not path.exists():
        raise UserModelError(f"{path}: no such labels file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserModelError(f"{path}: not UTF-8 text; {_LABELS_FILE}") from None
    except OSError as exc:
        raise UserModelError(f"{path}: cannot be read: {exc.strerror}") from exc
    if "\0" in text:  # valid UTF-8 but binary (a .pt archive can be): no text editor writes NUL
        raise UserModelError(f"{path}: binary, not text; {_LABELS_FILE}")
    return text


def load_labels(path: Path) -> list[str]:
    """One label per line; blank lines are ignored, and a UTF-8 byte order mark (as editors on Windows
    write it) is not part of the first label. Checked as every command checks labels (no repeats)."""
    labels = [line.strip() for line in _labels_text(path).splitlines() if line.strip()]
    try:
        return check_labels(labels)
    except ValueError as exc:
        raise UserModelError(f"{path}: {exc}") from None


def load_samples(directory: Path, preprocessing: Preprocessing) -> np.ndarray:
    """Every image in ``directory``, preprocessed exactly as the service will: (n, C, H, W) float32."""
    from poolserve.service.imaging.preprocess import decode_and_preprocess
    from poolserve.service.settings import Settings

    reduced_jpeg = Settings().reduced_jpeg_decode  # large JPEGs at reduced scale, as the service decodes them

    if directory.exists() and not directory.is_dir():
        raise UserModelError(f"{directory} is a file; images are given as a folder of them")
    if not directory.is_dir():
        raise UserModelError(f"{directory}: no such folder of images")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)
    if not files:
        raise UserModelError(f"{directory}: no images ({', '.join(SAMPLE_SUFFIXES)})")
    tensors = []
    for file in files:
        try:
            batch, _ = decode_and_preprocess(
                [file.read_bytes()], preprocessing, _MAX_SAMPLE_PIXELS, reduced_jpeg=reduced_jpeg
            )
            tensors.append(batch[0])
        except Exception as exc:
            raise UserModelError(f"{file}: cannot be decoded: {one_line(exc)}") from exc
    return np.stack(tensors)
