"""Decode + preprocess per image, before and after the lean hot path, on the benchmark's images.

"Before" is the service code at commit ``BEFORE`` (probe every format, EXIF transpose by copy, convert and
resize unconditionally, normalize in (H, W, C) with temporaries, ``np.full`` padding, ``np.stack``),
loaded from git; "after" is the working tree. Both run ``decode_and_preprocess`` on the same bytes, whose
outputs are checked bit-identical first. Rounds alternate before/after on one pinned core; the table
keeps each side's best round (the host is shared, single timings are noisy).

    .venv/bin/python -m bench.preprocess_cost        # prints the table; bench.decoders embeds it
"""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import sys
import timeit
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.payloads import digit_png, photo_jpeg
from poolserve.repository.manifest import Preprocessing
from poolserve.service.imaging import preprocess as after

BEFORE = "5ed51dd"
ROUNDS = 7
ROOT = Path(__file__).resolve().parent.parent
MAX_PIXELS = 1 << 24

DIGITS = Preprocessing(color_mode="L", height=28, width=28, scale=1 / 255, mean=[0.1307], std=[0.3081])
RGB224 = Preprocessing(
    color_mode="RGB", height=224, width=224, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
)


def big_photo() -> bytes:
    """The 1280x960 phone-photo-sized JPEG that bench.decoders also uses."""
    out = io.BytesIO()
    Image.open(io.BytesIO(photo_jpeg(960))).resize((1280, 960)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def cases() -> dict[str, tuple[list[bytes], Preprocessing]]:
    """name -> (one request's images, manifest preprocessing)."""
    digit, jpeg, big = digit_png(), photo_jpeg(224), big_photo()
    return {
        "digit 28x28 PNG -> lenet5-mnist (L 28x28)": ([digit], DIGITS),
        "32 digit PNGs in one request -> lenet5-mnist": ([digit] * 32, DIGITS),
        "224x224 JPEG -> RGB 224x224": ([jpeg], RGB224),
        "1280x960 JPEG -> RGB 224x224": ([big], RGB224),
    }


def _module_at(commit: str, path: str, name: str, **globals_: Any) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    # Those commits predate the ``poolserve`` package: their imports name the top-level packages, and
    # the old decoder module no longer exists (callers pass its functions in ``globals_``).
    for injected in globals_:
        source = re.sub(rf"^from service\.\S+ import {injected}\n", "", source, flags=re.M)
    source = re.sub(r"^from (service|repository)\.", r"from poolserve.\1.", source, flags=re.M)
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up there
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)  # our own history, from git
    module.__dict__.update(globals_)
    return module


def before_pipeline() -> Callable[[list[bytes], Preprocessing, int], tuple[np.ndarray, Any]]:
    decode = _module_at(BEFORE, "service/imaging/decode.py", "before_decode")
    # The old preprocess module imports decode_image by name: point that name at the old decoder too.
    old = _module_at(
        BEFORE, "service/imaging/preprocess.py", "before_preprocess", decode_image=decode.decode_image
    )
    pipeline: Callable[[list[bytes], Preprocessing, int], tuple[np.ndarray, Any]] = old.decode_and_preprocess
    return pipeline


def measure() -> list[dict[str, Any]]:
    os.sched_setaffinity(0, {0})
    old = before_pipeline()
    rows = []
    for name, (blobs, spec) in cases().items():
        expected, _ = old(blobs, spec, MAX_PIXELS)
        got, _ = after.decode_and_preprocess(blobs, spec, MAX_PIXELS)
        assert got.shape == expected.shape and got.tobytes() == expected.tobytes(), name
        timers = {
            side: timeit.Timer(functools.partial(f, blobs, spec, MAX_PIXELS))
            for side, f in (("before", old), ("after", after.decode_and_preprocess))
        }
        number = max(1, timers["before"].autorange()[0])
        best = {side: float("inf") for side in timers}
        for _ in range(ROUNDS):
            for side, timer in timers.items():
                best[side] = min(best[side], timer.timeit(number) / number / len(blobs) * 1e6)
        rows.append(
            {
                "case": name,
                "before_us_per_image": best["before"],
                "after_us_per_image": best["after"],
                "bit_identical": True,
            }
        )
    return rows


def batch_assembly() -> list[dict[str, Any]]:
    """ClassificationHandler's np.concatenate of one-image requests against concatenating into a buffer
    the handler would keep and reuse: the copy is the same, only the allocation is saved."""
    rows = []
    for name, shape, requests in (
        ("32 requests x 1x28x28", (1, 1, 28, 28), 32),
        ("8 requests x 3x224x224", (1, 3, 224, 224), 8),
    ):
        items = [np.ones(shape, np.float32) for _ in range(requests)]
        buffer = np.empty((requests, *shape[1:]), np.float32)
        timers = {
            "concatenate": timeit.Timer(functools.partial(np.concatenate, items)),
            "into_buffer": timeit.Timer(functools.partial(np.concatenate, items, out=buffer)),
        }
        number = max(1, timers["concatenate"].autorange()[0])
        best = dict.fromkeys(timers, float("inf"))
        for _ in range(ROUNDS):
            for side, timer in timers.items():
                best[side] = min(best[side], timer.timeit(number) / number * 1e6)
        rows.append({"batch": name, **{f"{side}_us": us for side, us in best.items()}})
    return rows


def markdown(rows: list[dict[str, Any]], assembly: list[dict[str, Any]]) -> str:
    lines = [
        f"## Decode + preprocess per image, before ({BEFORE}) and after (µs, best of {ROUNDS} alternating "
        "rounds, one core)",
        "",
        "Outputs bit-identical before and after (checked on these inputs by the script, and on a corpus of "
        "formats, modes, EXIF orientations and manifests by "
        "`tests/service/imaging/test_reference_equality.py`). "
        "Re-run: `.venv/bin/python -m bench.preprocess_cost`.",
        "",
        "| case | before | after | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        before, after_us = row["before_us_per_image"], row["after_us_per_image"]
        lines.append(f"| {row['case']} | {before:.0f} | {after_us:.0f} | {after_us / before:.2f} |")
    lines += [
        "",
        "Batch assembly (µs per batch): a reused buffer saves only the allocation, within noise, so the "
        "handler keeps `np.concatenate` (and passes a lone request's array through as it is).",
        "",
        "| batch | np.concatenate | into a reused buffer |",
        "| --- | ---: | ---: |",
    ]
    for row in assembly:
        lines.append(f"| {row['batch']} | {row['concatenate_us']:.1f} | {row['into_buffer_us']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    os.sched_setaffinity(0, {0})
    print(markdown(measure(), batch_assembly()))


if __name__ == "__main__":
    main()
