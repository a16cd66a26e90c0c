"""Run the benchmarks and print each figure beside its same-run baseline: `python -m bench [NAME...]`."""

from __future__ import annotations

import argparse

from bench import http_bench, ledger_commands, projections_bench


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=["ledger", "projections", "http"], help="default: all")
    parser.add_argument("--cases", type=int, default=150, help="ledger: case lifecycles per backend")
    parser.add_argument("--rounds", type=int, default=3, help="ledger: alternating rounds (median reported)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--events", type=int, default=1_000_000, help="projections: size of the large ledger")
    args = parser.parse_args()
    names = args.names or ["ledger", "projections", "http"]
    if "ledger" in names:
        ledger_commands.run(cases=args.cases, rounds=args.rounds, backend=args.backend)
    if "projections" in names:
        projections_bench.run(events=args.events)
    if "http" in names:
        http_bench.run_all(backend=args.backend)


if __name__ == "__main__":
    main()
