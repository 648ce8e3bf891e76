"""The deploy smokes' client: wait for /health/ready, then classify real digit PNGs and check the labels.

Standard library only, so it runs from any python3 without the project installed (CI host, fresh venv).
Prints one JSON object (seconds to ready, status and label counts, the images labelled wrong, the
replicas seen behind nginx); exits 1 unless every answer is HTTP 200 and enough labels are right.

    python3 deploy/smoke_client.py --url http://127.0.0.1:8000 --min-accuracy 0.95 tests/data/digits/*.png
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


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: the server's parent reaps it only later). Linux /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def wait_ready(url: str, timeout_s: float, since: float, pid: int | None = None) -> float:
    """Seconds from ``since`` (epoch) until ``GET /health/ready`` answered 200; ``TimeoutError`` past it,
    ``RuntimeError`` as soon as the server process ``pid`` (when given) has exited."""
    while time.time() - since < timeout_s:
        if pid is not None and not alive(pid):
            raise RuntimeError(f"server process {pid} exited before {url} was ready")
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


def classify(url: str, model: str, image: Path, api_key: str | None) -> tuple[int, dict[str, object], str]:
    headers = {"Content-Type": "image/png"} | ({"X-API-Key": api_key} if api_key else {})
    request = urllib.request.Request(  # noqa: S310 - the URL is the smoke's own loopback address
        f"{url}/v1/models/{model}/classify?top_k=1",
        data=image.read_bytes(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.load(response), response.headers.get("X-Upstream", "")
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode(errors="replace")[:500]}, ""


def model_statuses(url: str) -> object:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as response:  # noqa: S310
            listing = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"GET /v1/models failed: {error}"
    return {m["name"]: [m.get("status"), m.get("reason")] for m in listing.get("models", [])}


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
    parser.add_argument("--pid", type=int, default=None, help="server process: stop waiting if it exits")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=1.0,
        help="fraction of labels that must match (every status: 200)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="send every image this many times")
    parser.add_argument("--api-key", default=None, help="sent as X-API-Key")
    parser.add_argument("images", nargs="+", type=Path, help="PNG files named after their digit")
    args = parser.parse_args()

    report: dict[str, object] = {"url": args.url, "model": args.model}
    since = args.since or time.time()
    seconds_to_ready = wait_ready(args.url, args.ready_timeout, since, args.pid)
    report["seconds_to_ready"] = round(seconds_to_ready, 3)
    report["ready_at_epoch"] = round(since + seconds_to_ready, 3)
    results, upstreams = [], set()
    for _ in range(args.repeat):
        for image in args.images:
            status, body, upstream = classify(args.url, args.model, image, args.api_key)
            got = body["results"][0]["predictions"][0]["label"] if status == 200 else None  # type: ignore[index]
            results.append(
                {"image": image.name, "status": status, "expected": expected_label(image), "label": got}
            )
            if upstream:  # "a, b" when nginx retried: b answered
                upstreams.add(upstream.rsplit(",", 1)[-1].strip())
    not_ok = [r for r in results if r["status"] != 200]
    correct = sum(r["label"] == r["expected"] for r in results)
    report["classified"] = len(results)
    report["http_200"] = len(results) - len(not_ok)
    report["correct"] = correct
    report["accuracy"] = round(correct / len(results), 4)
    report["wrong"] = [r for r in results[: len(args.images)] if r["label"] != r["expected"]]
    if upstreams:
        report["upstreams"] = sorted(upstreams)
    passed = not not_ok and correct >= args.min_accuracy * len(results)
    report["passed"] = passed
    if not passed:  # the service says per model why it does not serve (load errors and the like)
        report["models"] = model_statuses(args.url)
    print(json.dumps(report, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
