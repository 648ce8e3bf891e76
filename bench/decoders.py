"""Image decoders and JSON encoders on the benchmark's own payloads, for the service's choice.

Decoders: Pillow (what poolserve uses now) against simplejpeg, PyTurboJPEG and OpenCV, each decoding
the same bytes to an RGB (or grayscale) uint8 array. Encoders: the stdlib ``json`` against ``orjson``
on classify- and features-shaped responses. One core, best of several repeats, microseconds per call.

    python -m bench setup                             # builds .bench-venvs/tools with the decoders
    .venv/bin/python -m bench.decoders

It runs in the project venv (the before/after table needs poolserve itself, and ``bench.payloads`` needs
httpx, which the tools venv lacks) and appends the tools venv's site-packages to ``sys.path`` for the
decoders; the project venv's own packages (numpy, Pillow) come first.

PyTurboJPEG is pinned below 2: 2.x needs libjpeg-turbo 3, and Debian 12's libturbojpeg0 is 2.1.

Besides speed, each JPEG decoder is checked pixel for pixel against Pillow on a corpus of JPEGs
(baseline and progressive, 4:4:4 / 4:2:2 / 4:2:0, grayscale, several qualities and sizes): poolserve
would only switch to one that never differs. Then ``bench.preprocess_cost`` times poolserve's whole
decode + preprocess before and after the issue-5 hot-path work.

Writes ``bench/results/decoders.json`` and ``bench/results/decoders.md``; a decoder that is not
installed is reported as missing, not skipped silently.
"""

from __future__ import annotations

import functools
import io
import json
import os
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import preprocess_cost
from bench.payloads import photo_jpeg
from bench.provenance import run_metadata

RESULTS = Path(__file__).resolve().parent / "results"
REPEATS = 7


def _images() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, mode): the digit PNG, the 224 JPEG and a phone-photo-sized 1280x960 JPEG."""
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[6:22, 12:16] = 255  # a stroke: the MNIST split needs the models package, this script must not
    png = io.BytesIO()
    Image.fromarray(digit).save(png, format="PNG")
    return {
        "digit-28x28.png": (png.getvalue(), "L"),
        "photo-224x224.jpg": (photo_jpeg(224), "RGB"),
        "photo-1280x960.jpg": (preprocess_cost.big_photo(), "RGB"),
    }


def _decoders() -> dict[str, Callable[[bytes, str], np.ndarray] | str]:
    found: dict[str, Callable[[bytes, str], np.ndarray] | str] = {
        "pillow": lambda data, mode: np.asarray(Image.open(io.BytesIO(data)).convert(mode)),
    }
    try:
        import simplejpeg

        found["simplejpeg"] = lambda data, mode: simplejpeg.decode_jpeg(
            data, colorspace="GRAY" if mode == "L" else "RGB"
        )
    except ImportError as error:
        found["simplejpeg"] = f"missing: {str(error).splitlines()[0]}"
    try:
        from turbojpeg import TJPF_GRAY, TJPF_RGB, TurboJPEG

        turbo = TurboJPEG()
        found["pyturbojpeg"] = lambda data, mode: turbo.decode(
            data, pixel_format=TJPF_GRAY if mode == "L" else TJPF_RGB
        )
    except (ImportError, RuntimeError, OSError) as error:
        found["pyturbojpeg"] = f"missing: {str(error).splitlines()[0]}"
    try:
        import cv2

        cv2.setNumThreads(1)

        def opencv(data: bytes, mode: str) -> np.ndarray:
            flag = cv2.IMREAD_GRAYSCALE if mode == "L" else cv2.IMREAD_COLOR
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
            return image if mode == "L" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

        found["opencv"] = opencv
    except ImportError as error:
        found["opencv"] = f"missing: {str(error).splitlines()[0]}"
    return found


def _jpeg_corpus() -> dict[str, tuple[bytes, str]]:
    """name -> (JPEG bytes, mode): every subsampling, baseline and progressive, colour and grayscale."""
    corpus = {}
    for size, seed in ((224, 0), (333, 1), (97, 3), (960, 2)):
        source = Image.open(io.BytesIO(photo_jpeg(size, seed)))
        for subsampling, progressive, quality in (
            (0, False, 90),
            (1, False, 90),
            (2, False, 90),
            (2, True, 90),
            (0, True, 95),
            (1, True, 98),
            (2, False, 50),
        ):
            for mode in ("RGB", "L"):
                out = io.BytesIO()
                options = {"subsampling": subsampling, "progressive": progressive, "quality": quality}
                source.convert(mode).save(out, format="JPEG", **options)
                name = f"{size}px-{mode}-ss{subsampling}-{'prog' if progressive else 'base'}-q{quality}"
                corpus[name] = (out.getvalue(), mode)
    return corpus


def pixel_identity() -> dict[str, Any]:
    """Per JPEG decoder: on how many corpus images its pixels equal Pillow's exactly."""
    corpus = _jpeg_corpus()
    table: dict[str, Any] = {}
    for name, decode in _decoders().items():
        if name == "pillow":
            continue
        if isinstance(decode, str):
            table[name] = decode
            continue
        differing = []
        for image_name, (data, mode) in corpus.items():
            reference = np.asarray(Image.open(io.BytesIO(data)).convert(mode))
            if not np.array_equal(decode(data, mode).reshape(reference.shape), reference):
                differing.append(image_name)
        table[name] = {"images": len(corpus), "identical": len(corpus) - len(differing), "differ": differing}
    return table


def _tools_site_packages() -> None:
    """Make the decoders installed in ``.bench-venvs/tools`` importable from the project venv."""
    tools = Path(__file__).resolve().parent.parent / ".bench-venvs" / "tools" / "lib"
    sys.path.extend(str(p) for p in sorted(tools.glob("python3*/site-packages")))


def _time_alternating(calls: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best of REPEATS rounds, each round timing every call once: load from other tenants hits all alike."""
    timers = {name: timeit.Timer(call) for name, call in calls.items()}
    numbers = {name: timer.autorange()[0] for name, timer in timers.items()}
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(REPEATS):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name] * 1e6)
    return best


def _time_us(call: Callable[[], object]) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(REPEATS, number)) / number * 1e6


def decoders() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for image_name, (data, mode) in _images().items():
        reference = np.asarray(Image.open(io.BytesIO(data)).convert(mode)).astype(np.int16)
        row: dict[str, Any] = {}
        calls: dict[str, Callable[[], object]] = {}
        for name, decode in _decoders().items():
            if isinstance(decode, str):
                row[name] = decode
                continue
            try:
                pixels = decode(data, mode)
            except Exception as error:  # a decoder that cannot read this format (PNG) says so in the table
                row[name] = f"cannot decode: {type(error).__name__}"
                continue
            diff = float(np.abs(pixels.astype(np.int16).reshape(reference.shape) - reference).mean())
            row[name] = {"mean_abs_diff_vs_pillow": diff}
            calls[name] = functools.partial(decode, data, mode)
        for name, us in _time_alternating(calls).items():
            row[name]["us"] = us
        table[image_name] = row
    return table


def _responses() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    classify = {
        "model": "lenet5-mnist",
        "version": 1,
        "predictions": [
            {"top_k": [{"label": str(i), "score": float(s)} for i, s in enumerate(rng.random(5))]}
        ],
    }
    features = {
        "model": "digits-roialign",
        "version": 1,
        "images": [
            {
                "regions": [
                    {"box": [1.0, 2.0, 30.0, 40.0], "features": rng.random(256).tolist()} for _ in range(4)
                ]
            }
        ],
    }
    return {"classify-1-image": classify, "features-4-boxes-256d": features}


def _stdlib_json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def encoders() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for name, payload in _responses().items():
        row: dict[str, Any] = {"json": _time_us(functools.partial(_stdlib_json, payload))}
        try:
            import orjson

            row["orjson"] = _time_us(functools.partial(orjson.dumps, payload))
        except ImportError as error:
            row["orjson"] = f"missing: {error}"
        table[name] = row
    return table


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Decoders and JSON encoders (µs per call, best of {REPEATS} alternating rounds, one core)",
        "",
        f"Run {results['meta']['started']} at commit `{results['meta']['git_commit']}`; "
        f"Python {results['python']}, pinned to cores {results['cores']}. "
        "Re-run: `.venv/bin/python -m bench.decoders` (decoders from `.bench-venvs/tools`).",
        "",
        "| image | " + " | ".join(results["decoder_names"]) + " |",
        "| --- |" + " ---: |" * len(results["decoder_names"]),
    ]
    for image, row in results["decoders"].items():
        cells = [
            f"{row[n]['us']:.0f}" if isinstance(row[n], dict) else row[n] for n in results["decoder_names"]
        ]
        lines.append(f"| {image} | " + " | ".join(cells) + " |")
    lines += ["", "Pixels equal to Pillow's, JPEG corpus (`_jpeg_corpus`):", ""]
    for name, row in results["pixel_identity"].items():
        summary = f"{row['identical']} of {row['images']} identical" if isinstance(row, dict) else row
        lines.append(f"- {name}: {summary}")
    lines += ["", "| response | json | orjson |", "| --- | ---: | ---: |"]
    for name, row in results["encoders"].items():
        cells = [f"{row[k]:.1f}" if isinstance(row[k], float) else row[k] for k in ("json", "orjson")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + "\n\n"
        + preprocess_cost.markdown(results["preprocess_cost"], results["batch_assembly"])
    )


def main() -> None:
    _tools_site_packages()
    os.sched_setaffinity(0, {0})
    decoded = decoders()
    names = list(next(iter(decoded.values())))
    results = {
        "meta": run_metadata(),
        "python": platform.python_version(),
        "cores": sorted(os.sched_getaffinity(0)),
        "decoder_names": names,
        "decoders": decoded,
        "encoders": encoders(),
        "pixel_identity": pixel_identity(),
        "preprocess_cost": preprocess_cost.measure(),
        "batch_assembly": preprocess_cost.batch_assembly(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decoders.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "decoders.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
