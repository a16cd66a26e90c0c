"""Run every benchmark and print each figure beside its same-run baseline."""

from __future__ import annotations

import argparse

from bench import ledger_commands


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--cases", type=int, default=150, help="case lifecycles per backend")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    args = parser.parse_args()
    ledger_commands.run(cases=args.cases, rounds=args.rounds, backend=args.backend)


if __name__ == "__main__":
    main()
