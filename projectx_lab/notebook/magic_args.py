"""Parsing of the trading magics' lines (shlex + argparse) into typed requests, with no I/O.

A malformed line raises `MagicUsageError` naming the problem and the magic's usage; nothing is
sent. Leg distances are ticks with a `t` suffix (`8t`) or absolute prices (`21440.25`).
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from projectx_lab.client.models import OrderSide
from projectx_lab.managers.timeframes import Timeframe

_TICKS = re.compile(r"^(\d+)[tT]$")
_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}


class MagicUsageError(ValueError):
    """A magic line that cannot be acted on; the text says why and shows the usage."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One bracket leg: a distance in ticks or an absolute price (exactly one is set)."""

    ticks: int | None = None
    price: Decimal | None = None

    def __str__(self) -> str:
        return f"{self.ticks}t" if self.ticks is not None else str(self.price)


@dataclass(frozen=True, slots=True)
class BracketRequest:
    """`%bracket MNQ buy 1 --stop 8t --target 16t [--limit PRICE]`, parsed."""

    symbol: str
    side: OrderSide
    size: int
    stop: Leg | None
    target: Leg | None
    limit: Decimal | None = None
    tag: str | None = None

    @property
    def signed_size(self) -> int:
        return self.size if self.side == OrderSide.BUY else -self.size

    def __str__(self) -> str:
        side = "buy" if self.side == OrderSide.BUY else "sell"
        parts = [self.symbol, side, str(self.size)]
        for flag, value in (("--stop", self.stop), ("--target", self.target),
                            ("--limit", self.limit), ("--tag", self.tag)):  # fmt: skip
            if value is not None:
                parts += [flag, str(value)]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """`%px_connect` options."""

    env: bool = False
    sim: str | None = None
    symbol: str = "MNQ"
    speed: float = 1.0
    seed: int = 7
    account: str | None = None
    timeframes: tuple[str, ...] = ("1min", "5min")


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """`%cancel ID [ID ...]` or `%cancel all [SYMBOL]`."""

    order_ids: tuple[int, ...] = ()
    all: bool = False
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class ArmRequest:
    """`%px_arm ACCOUNT --max-size N`."""

    account: str
    max_size: int


class _Parser(argparse.ArgumentParser):
    """argparse that raises `MagicUsageError` instead of printing and exiting."""

    def __init__(self, usage: str) -> None:
        prog = usage.split(" ", 1)[0]
        super().__init__(prog=prog, usage=usage, add_help=False, exit_on_error=False)

    def error(self, message: str) -> NoReturn:
        raise MagicUsageError(f"{message}\nusage: {self.usage}")

    def parse(self, line: str) -> argparse.Namespace:
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:  # unbalanced quotes
            self.error(str(exc))
        try:
            return self.parse_args(words)
        except argparse.ArgumentError as exc:
            self.error(str(exc))


def _leg(text: str) -> Leg:
    match = _TICKS.match(text.strip())
    if match:
        ticks = int(match[1])
        if ticks <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: a distance must be at least 1 tick")
        return Leg(ticks=ticks)
    return Leg(price=_price(text))


def _price(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither ticks (like 8t) nor a price (like 21440.25)"
        ) from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a price must be a positive number")
    return value


def _size(text: str) -> int:
    if not re.fullmatch(r"\+?\d+", text.strip()) or int(text) <= 0:
        raise argparse.ArgumentTypeError(
            f"size must be a positive whole number of contracts, got {text!r}"
        )
    return int(text)


def _side(text: str) -> OrderSide:
    side = _SIDES.get(text.strip().lower())
    if side is None:
        raise argparse.ArgumentTypeError(f"side must be buy or sell, got {text!r}")
    return side


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _symbol(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.]+", text):
        raise argparse.ArgumentTypeError(f"not a symbol or contract id: {text!r}")
    return text


def _timeframes(text: str) -> tuple[str, ...]:
    """`1min,5min`: each one checked here, so a typo is refused before any connection changes."""
    frames = tuple(f.strip() for f in text.split(",") if f.strip())
    if not frames:
        raise argparse.ArgumentTypeError("needs at least one timeframe, e.g. 1min,5min")
    for frame in frames:
        try:
            Timeframe.parse(frame)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return frames


def _order_id(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"an order id is a positive whole number, got {text!r}")
    return int(text)


def _add_legs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stop", type=_leg, metavar="8t|PRICE", help="stop loss")
    parser.add_argument("--target", type=_leg, metavar="16t|PRICE", help="take profit")


def _bracket_parser() -> _Parser:
    parser = _Parser(
        "%bracket SYMBOL buy|sell SIZE [--stop 8t|PRICE] [--target 16t|PRICE] "
        "[--limit PRICE] [--tag TAG]"
    )
    parser.add_argument("symbol", type=_symbol, metavar="SYMBOL")
    parser.add_argument("side", type=_side, metavar="buy|sell")
    parser.add_argument("size", type=_size, metavar="SIZE")
    _add_legs(parser)
    parser.add_argument("--limit", type=_price, metavar="PRICE", help="limit entry price")
    parser.add_argument("--tag", metavar="TAG", help="customTag of the entry (unique)")
    return parser


def _defaults_parser() -> _Parser:
    parser = _Parser("%%bracket [--stop 8t|PRICE] [--target 16t|PRICE]  (then one order per line)")
    _add_legs(parser)
    return parser


BRACKET = _bracket_parser()
BRACKET_DEFAULTS = _defaults_parser()


def parse_bracket(line: str, defaults: argparse.Namespace | None = None) -> BracketRequest:
    """One `%bracket` line; legs missing on the line come from `defaults` (the `%%bracket` line)."""
    if re.search(r"--(stop|target)(=|\s+)-", line):
        BRACKET.error("leg distances are positive (8t, not -8t): the side sets their direction")
    args = BRACKET.parse(line)
    stop = args.stop if args.stop is not None else getattr(defaults, "stop", None)
    target = args.target if args.target is not None else getattr(defaults, "target", None)
    if stop is None and target is None:
        BRACKET.error("a bracket needs --stop and/or --target (ticks like 8t, or a price)")
    request = BracketRequest(args.symbol, args.side, args.size, stop, target, args.limit, args.tag)
    _check_limit_legs(request)
    return request


def _check_limit_legs(request: BracketRequest) -> None:
    """With a limit entry, absolute legs must sit on the protective / profit side of it."""
    if request.limit is None:
        return
    buy = request.side == OrderSide.BUY
    for name, leg, below in (("stop", request.stop, buy), ("target", request.target, not buy)):
        if leg is None or leg.price is None:
            continue
        wrong = leg.price >= request.limit if below else leg.price <= request.limit
        if wrong:
            where = "below" if below else "above"
            side = "buy" if buy else "sell"
            BRACKET.error(
                f"--{name} {leg.price} is on the wrong side: for a {side} it must be {where} "
                f"the limit entry {request.limit}"
            )


def parse_bracket_cell(line: str, cell: str) -> list[BracketRequest]:
    """`%%bracket [--stop ..] [--target ..]` with one order per line (blank lines and `#`
    comments skipped). Every line is checked; errors name their line in the cell."""
    defaults = BRACKET_DEFAULTS.parse(line)
    requests: list[BracketRequest] = []
    problems: list[str] = []
    for number, text in enumerate(cell.splitlines(), 2):  # line 1 of the cell is %%bracket
        if not text.split("#", 1)[0].strip():
            continue
        try:
            requests.append(parse_bracket(text, defaults))
        except MagicUsageError as exc:
            problems.append(f"line {number} ({text.strip()}): {str(exc).splitlines()[0]}")
    if problems:
        raise MagicUsageError("\n".join([*problems, f"usage per line: {_line_usage()}"]))
    if not requests:
        raise MagicUsageError(f"%%bracket has no orders; one per line: {_line_usage()}")
    tags = [r.tag for r in requests if r.tag is not None]
    if len(tags) != len(set(tags)):
        raise MagicUsageError("each --tag must be unique within the account")
    return requests


def _line_usage() -> str:
    return str(BRACKET.usage).removeprefix("%bracket ")


def _connect_parser() -> _Parser:
    parser = _Parser(
        "%px_connect [--env | --sim NAME] [--symbol MNQ] [--speed 1.0] [--seed 7] "
        "[--account NAME] [--timeframes 1min,5min]"
    )
    parser.add_argument("--env", action="store_true", help="real gateway from PROJECTX_* vars")
    parser.add_argument("--sim", metavar="NAME", help="a running Simulator in the namespace")
    parser.add_argument("--symbol", type=_symbol, default="MNQ")
    parser.add_argument("--speed", type=_positive_float, help="simulator speed (default 1)")
    parser.add_argument("--seed", type=int, help="simulator market seed (default 7)")
    parser.add_argument("--account", metavar="NAME", help="account name or id to trade")
    parser.add_argument("--timeframes", type=_timeframes, default="1min,5min", metavar="1min,5min")
    return parser


CONNECT = _connect_parser()


def parse_connect(line: str) -> ConnectRequest:
    """`%px_connect [--env | --sim NAME] [--symbol MNQ] [--speed X] [--account NAME] ...`."""
    args = CONNECT.parse(line)
    if args.env and (args.sim is not None or args.speed is not None or args.seed is not None):
        CONNECT.error("--env connects to the real gateway: --sim, --speed and --seed do not apply")
    if args.sim is not None and (args.speed is not None or args.seed is not None):
        CONNECT.error("--speed and --seed configure the embedded simulator, not one given by --sim")
    if args.sim is not None and not args.sim.isidentifier():
        CONNECT.error(f"--sim takes a variable name, got {args.sim!r}")
    speed = 1.0 if args.speed is None else args.speed
    seed = 7 if args.seed is None else args.seed
    return ConnectRequest(
        args.env, args.sim, args.symbol, speed, seed, args.account, args.timeframes
    )


def _symbol_parser(prog: str) -> _Parser:
    parser = _Parser(f"{prog} [SYMBOL]")
    parser.add_argument("symbol", type=_symbol, nargs="?", metavar="SYMBOL")
    return parser


FLATTEN = _symbol_parser("%flatten")
ORDERS = _symbol_parser("%orders")


def parse_symbol(parser: _Parser, line: str) -> str | None:
    """An optional SYMBOL argument (`%flatten [SYMBOL]`, `%orders [SYMBOL]`)."""
    return getattr(parser.parse(line), "symbol", None)


def _cancel_parser() -> _Parser:
    parser = _Parser("%cancel ID [ID ...] | %cancel all [SYMBOL]")
    parser.add_argument("what", nargs="+", metavar="ID [ID ...] | all [SYMBOL]")
    return parser


CANCEL = _cancel_parser()


def parse_cancel(line: str) -> CancelRequest:
    """`%cancel 123 124` or `%cancel all [SYMBOL]`."""
    words: Sequence[str] = CANCEL.parse(line).what
    if words[0].lower() == "all":
        if len(words) > 2:
            CANCEL.error("%cancel all takes at most one SYMBOL")
        symbol = None
        if len(words) == 2:
            try:
                symbol = _symbol(words[1])
            except argparse.ArgumentTypeError as exc:
                CANCEL.error(str(exc))
        return CancelRequest(all=True, symbol=symbol)
    ids: list[int] = []
    for word in words:
        try:
            ids.append(_order_id(word))
        except argparse.ArgumentTypeError as exc:
            CANCEL.error(f"{exc} (or use: %cancel all)")
    return CancelRequest(order_ids=tuple(dict.fromkeys(ids)))


def _arm_parser() -> _Parser:
    parser = _Parser("%px_arm ACCOUNT --max-size N")
    parser.add_argument("account", metavar="ACCOUNT")
    parser.add_argument("--max-size", type=_size, required=True, metavar="N")
    return parser


ARM = _arm_parser()
DISARM = _Parser("%px_disarm [ACCOUNT]")
DISARM.add_argument("account", nargs="?", metavar="ACCOUNT")
NO_ARGS = {name: _Parser(name) for name in ("%positions", "%px_doctor", "%px_disconnect")}


def parse_arm(line: str) -> ArmRequest:
    """`%px_arm ACCOUNT --max-size N`."""
    args = ARM.parse(line)
    return ArmRequest(args.account, args.max_size)


def parse_disarm(line: str) -> str | None:
    """`%px_disarm [ACCOUNT]`: the account name, or None for all."""
    return DISARM.parse(line).account


def parse_none(prog: str, line: str) -> None:
    """Magics without arguments reject any."""
    NO_ARGS[prog].parse(line)
