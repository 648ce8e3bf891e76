"""``python -m bench run [--quick]`` runs the whole benchmark; ``python -m bench setup`` builds the peer
virtualenvs; ``python -m bench report`` redraws the table and plot from a results.json."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path

from bench.report import write_report
from bench.run import FULL, QUICK, run
from bench.setup import setup

RESULTS = Path(__file__).resolve().parent / "results"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the ``finally`` blocks that stop the servers


def main() -> None:
    # Background jobs of a non-interactive shell ignore SIGINT; SIGTERM must stop the servers too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="run the benchmark (about 15 minutes on 2 cores; --quick about 6)")
    run_cmd.add_argument("--quick", action="store_true", help="two concurrency levels, 3 s runs")
    run_cmd.add_argument("--models", nargs="+", choices=["digits", "resnet"], default=None)
    run_cmd.add_argument("--peers", nargs="*", default=None, help="subset of litserve bentoml torchserve ray")
    run_cmd.add_argument("--out", type=Path, default=None, help="default bench/results[/quick]")
    run_cmd.add_argument("--repository", type=Path, default=None, help="default model_repository/")
    sub.add_parser("setup", help="create .bench-venvs/<peer> virtualenvs (needs PyPI)")
    report_cmd = sub.add_parser("report", help="rewrite ratios.md and the plot from results.json")
    report_cmd.add_argument("results", type=Path, nargs="?", default=RESULTS / "results.json")
    args = parser.parse_args()
    if args.command == "setup":
        setup()
    elif args.command == "report":
        print(*write_report(args.results), sep="\n")
    else:
        plan = QUICK if args.quick else FULL
        if args.models:
            plan = dataclasses.replace(plan, models=tuple(args.models))
        if args.peers is not None:
            plan = dataclasses.replace(plan, peers=tuple(args.peers))
        if args.repository:
            plan = dataclasses.replace(plan, repository=args.repository.resolve())
        out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
        results = run(plan, out)
        print(results, *write_report(results), sep="\n")


if __name__ == "__main__":
    main()
