"""py-spy samples of poolserve under wrk load, summarized by the stages of a request.

    python -m bench.profile lenet5-mnist 32 > bench/results/profile_lenet5-mnist_c32.txt

Needs py-spy in ``.bench-venvs/tools`` (``python -m bench setup``). Percentages are of all samples
py-spy took of the server's threads while they were running (not idle).
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading

from bench import loadgen, payloads, processes, suite
from bench import run as bench_run
from bench.provenance import git_commit

STAGES = (
    "Session.run", "decode_and_preprocess", "decode_image", "parse_classify", "parse_form",
    "solve_dependencies", "run_in_threadpool", "DynamicBatcher._collect", "Condition.wait",
    "Condition.notify", "top_k", "OrjsonResponse", "RequestGuard.__call__", "RequestResponseCycle.send",
    "HttpToolsProtocol.data_received",
)  # fmt: skip


def main(model: str, concurrency: int, seconds: int = 8) -> None:
    entry = suite.ROOT / "model_repository" / model / "1"
    payload = payloads.classify_payload(payloads.digit_png(), "image/png")
    launch = suite._poolserve(entry, bench_run.SCRATCH, model)
    server = processes.start(
        "profile",
        bench_run._pinned(launch.argv, bench_run.SERVER_CORES),
        launch.env,
        bench_run.SCRATCH,
        suite.ROOT,
    )
    raw = bench_run.SCRATCH / "profile.txt"
    try:
        processes.wait_ready(server, launch.url, bench_run._probe(launch.url, payload), 60)
        pid = server.tree()[-1]
        load = threading.Thread(
            target=loadgen.run_wrk,
            args=(launch.url, payload, concurrency, seconds + 6, bench_run.CLIENT_CORES),
        )
        load.start()
        threading.Event().wait(3)
        spy = suite.VENVS / "tools/bin/py-spy"
        subprocess.run(
            ["taskset", "-c", bench_run.CLIENT_CORES, str(spy), "record", "-p", str(pid), "-d", str(seconds),
             "-r", "250", "-f", "raw", "-o", str(raw), "--threads", "--nonblocking"],
            check=True, capture_output=True,
        )  # fmt: skip
        load.join()
    finally:
        server.stop()
    total, stages, threads = 0, collections.Counter[str](), collections.Counter[str]()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        threads[stack.split(";")[0].split(":")[-1].strip()] += int(count)
        for stage in STAGES:
            if stage in stack:
                stages[stage] += int(count)
    print(f"# py-spy, {model}, c={concurrency}, {seconds} s at 250 Hz: {total} samples")
    print(f"# commit {git_commit()}")
    for name, samples in threads.most_common(8):
        print(f"thread {name}: {samples / total:.1%}")
    for name, samples in stages.most_common():
        print(f"{samples / total:6.1%}  {name}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
