"""The dataset to extract: image paths (a folder, a glob or a list file) and, for region models, boxes.

Items come out in one deterministic order (sorted by path), whatever the listing's own order, so shard
``n`` holds the same images on every run and every engine.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


class DatasetError(Exception):
    """The listing or box file itself is unusable (not one image in it): the job cannot start."""


@dataclass(frozen=True)
class Item:
    """One image to extract. ``boxes`` is None for classifiers; a region image may have zero boxes."""

    key: str  # the path as the dataset names it; written to the ``image`` column
    path: str  # where to read it
    boxes: list[Any] | None = None  # as the box file gives them, x1 y1 x2 y2; checked per image later
    category_ids: list[int] | None = None  # per box, from a COCO file


@dataclass(frozen=True)
class Listing:
    keys: list[str]
    root: Path | None  # the folder keys are relative to; None: keys are paths as written


def list_images(source: str) -> Listing:
    """A folder (recursive, by image suffix), a ``.txt`` list (one path a line) or a glob pattern."""
    path = Path(source)
    # Anything but a folder is listed, not only regular files: a dangling link, a device or a FIFO named
    # like an image is reported in errors.jsonl (prepare.read_image_file refuses it) rather than skipped.
    if path.is_dir():
        keys = [
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
        ]
        return Listing(sorted(keys), path)
    if path.suffix == ".txt" and path.is_file():
        return Listing(_list_file(path), None)
    matches = sorted(glob.glob(source, recursive=True))  # noqa: PTH207 (a pattern, maybe absolute)
    if not matches:
        raise DatasetError(f"--images {source!r} is no folder, no .txt list and matches no file")
    return Listing([m for m in matches if not Path(m).is_dir()], None)


def _list_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"--images {path}: not UTF-8 text (byte {exc.start}); save the list as UTF-8, one path a line"
        ) from None
    except OSError as exc:
        raise DatasetError(f"--images {path}: cannot read it ({exc.strerror})") from None
    return sorted({line.strip() for line in lines if line.strip()})


def _resolve(listing: Listing, key: str) -> str:
    return str(listing.root / key) if listing.root is not None else key


def _normal(key: str) -> str:
    return Path(os.path.normpath(key)).as_posix()


@dataclass(frozen=True)
class BoxTable:
    boxes: dict[str, list[Any]]
    category_ids: dict[str, list[int]] | None


def read_boxes(path: Path) -> BoxTable:
    """COCO annotation JSON (``images[].file_name``, ``annotations[].bbox`` as x, y, w, h) or JSON Lines
    (``{"image": path, "boxes": [[x1, y1, x2, y2], ...]}``), keyed by normalized image path."""
    try:
        text = path.read_text(encoding="utf-8")
        table = _read_jsonl(text) if path.suffix == ".jsonl" else _read_coco(json.loads(text))
    except FileNotFoundError:
        raise DatasetError(f"--boxes {path}: no such file") from None
    except _BoxFileError as exc:
        raise DatasetError(f"--boxes {path}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyError) else f"no {exc} field"
        raise DatasetError(f"--boxes {path}: not a COCO or JSON Lines box file ({what})") from None
    if not table.boxes:  # else the job would find no image to run and blame --images
        raise DatasetError(f"--boxes {path}: names no image (COCO: images[] is empty; JSON Lines: no lines)")
    return table


class _BoxFileError(ValueError):
    """The box file parses, but says something impossible; the message says where."""


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _BoxFileError(f"{where} is a JSON {type(value).__name__}; expected an object")
    return value


def _read_jsonl(text: str) -> BoxTable:
    boxes: dict[str, list[Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:  # its own line number counts within this line alone
            raise _BoxFileError(f"line {number}, column {exc.colno}: {exc.msg}") from None
        record = _object(record, f"line {number}")
        try:
            boxes.setdefault(_normal(record["image"]), []).extend(record["boxes"])
        except KeyError as exc:
            raise _BoxFileError(f"line {number}: no {exc} field") from None
        except TypeError as exc:
            raise _BoxFileError(f"line {number}: {exc}") from None
    return BoxTable(boxes, None)


def _read_coco(coco: object) -> BoxTable:
    coco = _object(coco, "the file")
    names = {image["id"]: _normal(image["file_name"]) for image in coco["images"]}
    boxes: dict[str, list[Any]] = {name: [] for name in names.values()}
    categories: dict[str, list[int]] = {name: [] for name in names.values()}
    for annotation in sorted(coco.get("annotations", []), key=lambda a: a.get("id", 0)):
        x, y, w, h = annotation["bbox"]
        if annotation["image_id"] not in names:
            raise _BoxFileError(
                f"annotation {annotation.get('id')}: image_id {annotation['image_id']} is not in images[]"
            )
        name = names[annotation["image_id"]]
        boxes[name].append([x, y, x + w, y + h])
        categories[name].append(int(annotation.get("category_id", -1)))
    return BoxTable(boxes, categories)


def build_items(listing: Listing, table: BoxTable | None) -> list[Item]:
    """Classifiers: every listed image. Region models: every image the box file names, found through the
    listing (a named image the listing lacks is kept, so the job reports it missing); listed images
    without an entry in the box file have nothing to pool and are left out."""
    if table is None:
        return [Item(k, _resolve(listing, k)) for k in listing.keys]
    listed = {_normal(k): k for k in listing.keys}
    items = []
    for name in sorted(table.boxes):
        key = listed.get(name, name)
        categories = table.category_ids[name] if table.category_ids is not None else None
        items.append(Item(key, _resolve(listing, key), table.boxes[name], categories))
    return items
