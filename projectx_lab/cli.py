"""`projectx-lab` command line: `sim` runs the local gateway simulator until Ctrl-C / SIGTERM;
`demo` runs a guided tour of the SDK on a fresh simulator."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {text}")
    return value


def _add_sim(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "sim",
        help="run the local ProjectX gateway simulator",
        description="Serve the gateway REST API and both SignalR hubs on one local port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=_port, default=0, help="port (default: a free port)")
    parser.add_argument("--seed", type=int, default=7, help="market seed (default: 7)")
    parser.add_argument(
        "--speed", type=_positive_float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument("--username", default=None, help="login user name (default: demo)")
    parser.add_argument("--api-key", default=None, help="login API key (default: sim-demo-key)")
    parser.set_defaults(run=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_serve_sim(args))
    except OSError as exc:  # bind failures: port taken, bad address
        print(f"projectx-lab sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1


async def _serve_sim(args: argparse.Namespace) -> int:
    from projectx_lab.sim import Simulator

    options = {}
    if args.username is not None:
        options["username"] = args.username
    if args.api_key is not None:
        options["api_key"] = args.api_key
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Simulator(
            seed=args.seed, speed=args.speed, host=args.host, port=args.port, **options
        ) as sim:
            print(
                f"ProjectX gateway simulator (seed {sim.config.seed}, speed {sim.clock.speed:g}x)\n"
                f"  REST API    {sim.api_url}\n"
                f"  User hub    {sim.user_hub_url}\n"
                f"  Market hub  {sim.market_hub_url}\n"
                f"  Username    {sim.username}\n"
                f"  API key     {sim.api_key}\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("Simulator stopped.", flush=True)
    return 0


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="live bars, order book and a bracket order on the embedded simulator",
        description="Start the simulator, show live bars and the top of book, place a bracket "
        "order, follow its fill and P&L, flatten and exit. Plain lines when not on a terminal.",
    )
    parser.add_argument("--symbol", default="MNQ", help="instrument symbol (default: MNQ)")
    parser.add_argument(
        "--seconds", type=_positive_float, default=30.0, help="run time in real seconds (>= 3)"
    )
    parser.add_argument(
        "--speed", type=_positive_float, default=10.0, help="simulated seconds per real second"
    )
    parser.add_argument("--seed", type=int, default=7, help="market seed (default: 7)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from projectx_lab.demo import DemoOptions, main

    options = DemoOptions(symbol=args.symbol, seconds=args.seconds, speed=args.speed,
                          seed=args.seed)  # fmt: skip
    return main(options, debug=args.debug)


def build_parser() -> argparse.ArgumentParser:
    """The `projectx-lab` parser; each subcommand sets `run` to its handler."""
    parser = argparse.ArgumentParser(
        prog="projectx-lab", description="ProjectX Gateway research and paper-trading kit."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sim(commands)
    _add_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `projectx-lab` script."""
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
