"""Run the benchmarks and print each figure beside its same-run baseline: `python -m bench [NAME...]`."""

from __future__ import annotations

import argparse

from bench import feed_bench, http_bench, ledger_commands, merkle_bench, projections_bench


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", choices=["ledger", "projections", "http", "feed", "merkle"], help="default: all"
    )
    parser.add_argument("--cases", type=int, default=150, help="ledger: case lifecycles per backend")
    parser.add_argument("--rounds", type=int, default=3, help="ledger: alternating rounds (median reported)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="projections, merkle: size of the large ledger"
    )
    parser.add_argument("--feed-events", type=int, default=100_000, help="feed: size of the ledger")
    args = parser.parse_args()
    names = args.names or ["ledger", "projections", "http", "feed", "merkle"]
    if "ledger" in names:
        ledger_commands.run(cases=args.cases, rounds=args.rounds, backend=args.backend)
    if "projections" in names:
        projections_bench.run(events=args.events)
    if "http" in names:
        http_bench.run_all(backend=args.backend)
    if "feed" in names:
        feed_bench.run(backend=args.backend, events=args.feed_events)
    if "merkle" in names:
        merkle_bench.run(events=args.events)


if __name__ == "__main__":
    main()
