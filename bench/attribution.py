"""Where poolserve's per-request time goes: the stock service against variants that change one thing
(a settings override, or a probe from ``bench/targets/poolserve_variants.py``), two rounds, alternating,
on the benchmark's pinning and payloads. The variant ``bare`` is the bare endpoint, for reference.

    python -m bench.attribution lenet5-mnist 1,32 stock,bare,stock+POOLSERVE_INLINE_DECODE_MAX_BYTES=0
"""

from __future__ import annotations

import sys

from bench import loadgen, payloads, processes, suite
from bench import run as bench_run
from bench.provenance import git_commit

ROUNDS = 2
SECONDS = 5.0


def main(model: str, concurrencies: list[int], variants: list[str]) -> None:
    repository = suite.ROOT / ("model_repository" if model.startswith("lenet") else ".bench-repository")
    entry = repository / model / "1"
    if model.startswith("lenet"):
        payload = payloads.classify_payload(payloads.digit_png(), "image/png")
    else:
        payload = payloads.classify_payload(payloads.photo_jpeg(), "image/jpeg")
    print(f"# commit {git_commit()}")
    for round_no in range(ROUNDS):
        for variant in variants:
            factory, _, override = variant.partition("+")
            if factory == "bare":  # the reference: the bare endpoint, decode only
                launch = suite.BARE.launch(entry, bench_run.SCRATCH, model)
                argv = launch.argv
            else:
                launch = suite._poolserve(entry, bench_run.SCRATCH, model)
                app = f"bench.targets.poolserve_variants:{factory}"
                argv = [app if a == "poolserve.service.app:create_app" else a for a in launch.argv]
            env = dict(launch.env)
            if override:
                key, value = override.split("=", 1)
                env[key] = value
            server = processes.start(
                "attribution",
                bench_run._pinned(argv, bench_run.SERVER_CORES),
                env,
                bench_run.SCRATCH,
                suite.ROOT,
            )
            try:
                processes.wait_ready(server, launch.url, bench_run._probe(launch.url, payload), 60)
                loadgen.run_wrk(launch.url, payload, max(concurrencies), 2, bench_run.CLIENT_CORES)
                for concurrency in concurrencies:
                    r = bench_run._measure(server, launch.url, payload, concurrency, SECONDS)
                    print(
                        f"{variant:>45} round {round_no} c={concurrency:<3} {r['images_per_s']:7.1f} img/s "
                        f"p50 {r['p50_ms']:6.1f} ms p99 {r['p99_ms']:6.1f} ms "
                        f"cpu/request {1000 * r['server_cpu_s'] / r['requests']:.2f} ms "
                        f"foreign {r['foreign_cpu_on_server_core_s'] / r['duration_s']:.0%}",
                        flush=True,
                    )
            finally:
                server.stop()


if __name__ == "__main__":
    main(sys.argv[1], [int(c) for c in sys.argv[2].split(",")], sys.argv[3].split(","))
