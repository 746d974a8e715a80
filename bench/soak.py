"""Soak: 1,000,000 trade prints and depth items into a full TradingSuite with periodic
market-hub drops (simulator in a child process); memory at the end must stay within 1.2× of
memory after the first 10,000 events.

    python bench/soak.py [--events 1000000] [--drops 10] [--transport signalrcore|native]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from projectx_lab.testing.soak import SoakReport, soak

LIMIT = 1.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--drops", type=int, default=10)
    parser.add_argument("--speed", type=float, default=300.0, help="simulated seconds per second")
    parser.add_argument("--transport", choices=("signalrcore", "native"), default="signalrcore")
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # reconnect warnings are expected

    def progress(report: SoakReport) -> None:
        print(f"  {report.events:>9,} events, drop {report.drops}", flush=True)

    report = asyncio.run(
        soak(
            args.events,
            drops=args.drops,
            speed=args.speed,
            transport=args.transport,
            progress=progress,
        )
    )
    mib = 1 << 20
    print(
        f"{report.events:,} events ({report.trades:,} trades, {report.depth:,} depth items) in "
        f"{report.seconds:.1f} s ({report.rate:,.0f}/s); drops {report.recovered}/{report.drops} "
        f"recovered"
    )
    print(
        f"memory after {report.baseline_events:,} events {report.baseline_rss / mib:.1f} MiB, "
        f"at the end {report.end_rss / mib:.1f} MiB → {report.ratio:.2f}× "
        f"({'PASS' if report.ratio <= LIMIT else 'FAIL'}, limit {LIMIT}×)"
    )
    return 0 if report.ratio <= LIMIT and report.recovered >= report.drops else 1


if __name__ == "__main__":
    sys.exit(main())
