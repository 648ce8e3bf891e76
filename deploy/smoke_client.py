"""The deploy smokes' client: wait for /health/ready, then classify real digit PNGs and check the labels.

Standard library only, so it runs from any python3 without the project installed (CI host, fresh venv).
Prints one JSON object (seconds to ready, per-image results, distinct upstreams seen behind nginx) and
exits non-zero on the first failed expectation.

    python3 deploy/smoke_client.py --url http://127.0.0.1:8000 --model lenet5-mnist tests/data/digits/*.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def wait_ready(url: str, timeout_s: float, since: float) -> float:
    """Seconds from ``since`` (epoch) until ``GET /health/ready`` answered 200; ``TimeoutError`` past it."""
    while time.time() - since < timeout_s:
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return time.time() - since
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or 503 while models load
        time.sleep(0.1)
    raise TimeoutError(f"{url}/health/ready not 200 within {timeout_s:.0f} s")


def expected_label(image: Path) -> str:
    """The digit an image shows: the first number in its name (``7.png``, ``digit_7.png``, ``7_003.png``)."""
    match = re.search(r"\d+", image.stem)
    if match is None:
        raise ValueError(f"{image.name}: no digit in the file name to expect")
    return match.group()


def classify(url: str, model: str, image: Path) -> tuple[int, dict[str, object], str]:
    request = urllib.request.Request(  # noqa: S310 - the URL is the smoke's own loopback address
        f"{url}/v1/models/{model}/classify?top_k=1",
        data=image.read_bytes(),
        headers={"Content-Type": "image/png"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.load(response), response.headers.get("X-Upstream", "")
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode(errors="replace")[:500]}, ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", default="lenet5-mnist")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--since", type=float, default=None, help="epoch seconds to time readiness from (default: now)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="send every image this many times")
    parser.add_argument("images", nargs="+", type=Path, help="PNG files named after their digit")
    args = parser.parse_args()

    report: dict[str, object] = {"url": args.url, "model": args.model}
    since = args.since or time.time()
    seconds_to_ready = wait_ready(args.url, args.ready_timeout, since)
    report["seconds_to_ready"] = round(seconds_to_ready, 3)
    report["ready_at_epoch"] = round(since + seconds_to_ready, 3)
    results, upstreams, failures = [], set(), 0
    for _ in range(args.repeat):
        for image in args.images:
            status, body, upstream = classify(args.url, args.model, image)
            want = expected_label(image)
            got = body["results"][0]["predictions"][0]["label"] if status == 200 else None  # type: ignore[index]
            failures += status != 200 or got != want
            results.append({"image": image.name, "status": status, "expected": want, "label": got})
            if upstream:  # "a, b" when nginx retried: b answered
                upstreams.add(upstream.rsplit(",", 1)[-1].strip())
    report["classified"] = len(results)
    report["failures"] = failures
    report["results"] = results[: len(args.images)]
    if upstreams:
        report["upstreams"] = sorted(upstreams)
    print(json.dumps(report, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
