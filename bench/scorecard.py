"""Fault scorecard: runs every fault scenario against the simulator and prints one line,
e.g. `drops 20/20 recovered · subscriptions lost 0 · … · soak memory 1.1×`.

    python bench/scorecard.py                 # full run, 1,000,000-event soak
    python bench/scorecard.py --soak-events 200000 --verbose
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from projectx_lab.testing.scorecard import run_scorecard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=20, help="market-hub drops (default 20)")
    parser.add_argument("--soak-events", type=int, default=1_000_000,
                        help="soak length in trades + depth items; 0 skips it")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="print every scenario's report")
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # scenarios provoke warnings on purpose
    started = time.monotonic()

    def progress(step: str) -> None:
        print(f"… {step}", file=sys.stderr, flush=True)

    card = asyncio.run(
        run_scorecard(drops=args.drops, soak_events=args.soak_events, progress=progress)
    )
    if args.verbose:
        for name, report in card.reports.items():
            print(f"{name}: {report}")
    print(card.line())
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
