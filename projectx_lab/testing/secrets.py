"""Scenario 9: a whole session with every logger at DEBUG (ours, the HTTP stack, websockets,
signalrcore, uvicorn), then every log record, repr and exception text scanned for the session
tokens and the API key. The tokens are taken from the simulator (every one it issued)."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from projectx_lab.client import ProjectX
from projectx_lab.client.errors import ProjectXError
from projectx_lab.realtime import create_realtime_client

from .rig import Rig, RigOptions

LIBRARY_LOGGERS = ("httpx", "httpcore", "hpack", "h2", "h11", "websockets", "websocket",
                   "signalrcore", "SignalRCoreClient", "uvicorn", "uvicorn.error", "asyncio",
                   "projectx_lab")  # fmt: skip
PLACE = "/api/Order/place"
ACCOUNTS = "/api/Account/search"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.records = 0
        self._format = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.texts.append(self._format.format(record))  # message, args and traceback


@dataclass(slots=True)
class SecretReport:
    """Secrets known, texts scanned, and every place one leaked (first 200 chars)."""

    secrets: int = 0
    records: int = 0
    texts: int = 0
    leaked: int = 0
    where: list[str] = field(default_factory=list)


def _error_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


async def _session(rig: Rig, errors: list[BaseException], objects: list[Any]) -> None:
    """Everything a trading session does that carries a token or the key somewhere."""
    suite, client, faults = rig.the_suite, rig.the_client, rig.sim.faults
    await rig.trades(2)
    bracket = await suite.orders.place_bracket_order(
        rig.contract_id, "buy", 1, stop_loss_ticks=8, take_profit_ticks=8
    )
    await suite.orders.wait_for_fill(bracket, timeout=10.0)
    faults.drop_hub("all", "abort")  # reconnects: negotiate + upgrade carry the token
    faults.expire_all_tokens()  # 401 → re-login (the key goes out again)
    await client.list_accounts()
    async with create_realtime_client(client, transport="native", **rig.options.realtime()) as rt:
        await rt.subscribe_market(rig.contract_id, depth=False)
        objects.append(rt)
    faults.fail_next(PLACE, 1, 503)
    faults.fail_next(ACCOUNTS, 10, 500)
    for call in (
        lambda: client.place_order("MNQ", side="buy", size=1),
        client.list_accounts,
        lambda: client.get_order(123),
    ):
        try:
            await call()
        except ProjectXError as exc:
            errors.append(exc)
    bad_key = ProjectX.for_simulator(rig.sim, api_key="wrong-key-0123456789")
    try:
        await bad_key.authenticate()
    except ProjectXError as exc:
        errors.append(exc)
    objects += [bad_key, bad_key.settings]
    await bad_key.aclose()
    await suite.orders.flatten(rig.contract_id)
    session = client._session
    objects += [client, client.settings, session, session.auth, session.transport, suite,
                suite.orders, suite.positions, suite.data, suite.orderbook, suite.realtime,
                client.stats, client.account_info, await client.get_health_status()]  # fmt: skip


async def secret_scan(options: RigOptions | None = None) -> SecretReport:
    """Run the session under DEBUG logging and scan everything it left behind."""
    capture = _Capture()
    root = logging.getLogger()
    saved = [(root, root.level)] + [
        (logging.getLogger(name), logging.getLogger(name).level) for name in LIBRARY_LOGGERS
    ]
    root.addHandler(capture)
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    errors: list[BaseException] = []
    objects: list[Any] = []
    try:
        async with Rig(options or RigOptions(token_ttl=3.0)) as rig:
            await _session(rig, errors, objects)
            tokens = list(rig.sim.tokens._sessions)  # every token the simulator issued
            secrets = [*tokens, rig.sim.api_key, "wrong-key-0123456789"]
            texts = [repr(o) for o in objects] + [str(o) for o in objects]
    finally:
        root.removeHandler(capture)
        for logger, level in saved:
            logger.setLevel(level)
    for exc in errors:
        texts += _error_texts(exc)
    texts += capture.texts
    report = SecretReport(secrets=len(secrets), records=capture.records, texts=len(texts))
    for text in texts:
        if any(secret in text for secret in secrets):
            report.leaked += 1
            report.where.append(text[:200])
    return report
