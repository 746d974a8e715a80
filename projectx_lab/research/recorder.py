"""Session recording: every hub message a suite receives, raw, into Parquet with bounded memory.

```python
async with SessionRecorder(suite, "sessions/2026-10-01-mnq") as rec:
    ...                                  # trade, watch, wait
# later: Simulator(replay="sessions/2026-10-01-mnq", speed=20)
```

One row per message as the real-time client delivered it: `seq` (arrival order), `recv_ns`
(local wall clock), `target` (`GatewayTrade`, `GatewayQuote`, `GatewayDepth`,
`GatewayUserOrder`, `GatewayUserPosition`, `GatewayUserTrade`, `GatewayUserAccount`, or
`connection` for hub state changes), `contract_id`, `action` (user events), `snapshot` (rows
written at start from state the suite already held) and `payload`: the `data` part of the
message as JSON, re-serialised without touching a field, so wire timestamps and prices stay
exactly as sent. Rows go to `part-NNNNN.parquet` every `chunk_rows` rows, written on a worker
thread (at most one chunk filling and one being written); `manifest.json` is rewritten
atomically after every part (`complete: false`) and by `close()` (`complete: true`), so a
crashed session still replays up to its last part. Format: docs/architecture.md.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from projectx_lab.managers.ticks import parse_ts_ns

logger = logging.getLogger("projectx_lab.recorder")

FORMAT = "projectx-lab-recording"  # projectx_lab.sim.replay_source reads this format
VERSION = 1
MANIFEST = "manifest.json"
_WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"
_STAMPS = pl.List(pl.Struct({"timestamp": pl.String}))
_QUOTE_STAMP = pl.Struct({"timestamp": pl.String})


class RecorderError(RuntimeError):
    """The recording could not be written (the message says why; earlier parts are intact)."""


class RecordingWriter:
    """Appends message rows and writes them as Parquet parts plus a manifest (no suite needed).

    `add()` is the hot path: six list appends. Every `chunk_rows` rows the chunk is handed to a
    worker thread; if the previous chunk is still being written, `add()` waits for it, so memory
    holds at most two chunks.
    """

    def __init__(self, path: str | Path, *, chunk_rows: int = 50_000) -> None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(f"{self.path} exists and is not an empty directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.chunk_rows = chunk_rows
        self.contracts: dict[str, dict[str, Any]] = {}
        self.account_id: int | None = None
        self.rows = 0
        self.counts: dict[str, int] = {}
        self._parts: list[dict[str, Any]] = []
        self._new_chunk()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "projectx-lab-recorder")
        self._pending: concurrent.futures.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"RecordingWriter({str(self.path)!r}, {state}, rows={self.rows})"

    @property
    def error(self) -> BaseException | None:
        """The write failure that stopped recording, if any."""
        return self._error

    def _new_chunk(self) -> None:
        self._recv: list[int] = []
        self._target: list[str] = []
        self._cid: list[str | None] = []
        self._action: list[int | None] = []
        self._snapshot: list[bool] = []
        self._payload: list[bytes] = []

    def add(
        self,
        target: str,
        contract_id: str | None,
        action: int | None,
        data: Any,
        snapshot: bool = False,
    ) -> None:
        """Queue one message (its `data` is serialised now, so later mutation cannot leak in)."""
        if self._closed or self._error is not None:
            return
        self._recv.append(time.time_ns())
        self._target.append(target)
        self._cid.append(contract_id)
        self._action.append(action)
        self._snapshot.append(snapshot)
        self._payload.append(orjson.dumps(data))
        if len(self._recv) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Hand the rows gathered so far to the writer thread (no-op when there are none)."""
        if not self._recv or self._error is not None:
            return
        pending = self._pending
        if pending is not None:
            try:
                pending.result()  # back-pressure: never more than one chunk in flight
            except BaseException as exc:
                self._fail(exc)
                return
        columns = (
            self._recv, self._target, self._cid, self._action, self._snapshot, self._payload
        )  # fmt: skip
        first_seq = self.rows
        self.rows += len(self._recv)
        for target in self._target:
            self.counts[target] = self.counts.get(target, 0) + 1
        self._new_chunk()
        index = len(self._parts)
        self._parts.append({"name": f"part-{index:05d}.parquet", "rows": len(columns[0])})
        manifest = self._manifest(complete=False)
        self._pending = self._executor.submit(self._write, index, first_seq, columns, manifest)

    def close(self, *, start_ns: int | None = None, end_ns: int | None = None) -> dict[str, Any]:
        """Write what is left and the final manifest; returns the manifest. `start_ns` /
        `end_ns` widen the recorded window (default: first and last wire timestamps)."""
        if self._closed:
            return self._manifest(complete=True)
        self.flush()
        self._closed = True
        try:
            if self._pending is not None:
                self._pending.result()
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._executor.shutdown(wait=True)
        if self._error is not None:
            raise RecorderError(
                f"recording to {self.path} failed: {self._error}; the parts written before "
                "the failure replay up to that point"
            ) from self._error
        manifest = self._manifest(complete=True, start_ns=start_ns, end_ns=end_ns)
        _write_json(self.path / MANIFEST, manifest)
        return manifest

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            logger.error("session recording to %s stopped: %s", self.path, exc)

    def _manifest(
        self, *, complete: bool, start_ns: int | None = None, end_ns: int | None = None
    ) -> dict[str, Any]:
        starts = [p["start_ns"] for p in self._parts if p.get("start_ns") is not None]
        ends = [p["end_ns"] for p in self._parts if p.get("end_ns") is not None]
        if start_ns is not None:
            starts.append(start_ns)
        if end_ns is not None:
            ends.append(end_ns)
        return {
            "format": FORMAT,
            "version": VERSION,
            "complete": complete,
            "created": datetime.now(UTC).isoformat(),
            "start_ns": min(starts) if starts else None,
            "end_ns": max(ends) if ends else None,
            "rows": sum(p["rows"] for p in self._parts),
            "parts": [p["name"] for p in self._parts],
            "part_info": [dict(p) for p in self._parts],
            "contracts": dict(self.contracts),
            "account_id": self.account_id,
            "counts": dict(self.counts),
        }

    def _write(
        self, index: int, first_seq: int, columns: tuple[list[Any], ...], manifest: dict[str, Any]
    ) -> None:
        recv, target, cid, action, snapshot, payload = columns
        n = len(recv)
        frame = pl.DataFrame(
            {
                "seq": pl.int_range(first_seq, first_seq + n, eager=True, dtype=pl.Int64),
                "recv_ns": pl.Series(recv, dtype=pl.Int64),
                "target": pl.Series(target, dtype=pl.String),
                "contract_id": pl.Series(cid, dtype=pl.String),
                "action": pl.Series(action, dtype=pl.Int64),
                "snapshot": pl.Series(snapshot, dtype=pl.Boolean),
                "payload": pl.Series(payload, dtype=pl.Binary).cast(pl.String),
            }
        )
        start, end = _wire_window(frame)
        info = self._parts[index]
        info["start_ns"], info["end_ns"] = start, end
        manifest["part_info"][index].update(start_ns=start, end_ns=end)
        known = [p for p in manifest["part_info"] if p.get("start_ns") is not None]
        parts_start = [p["start_ns"] for p in known]
        parts_end = [p["end_ns"] for p in known]
        manifest["start_ns"] = min(parts_start) if parts_start else None
        manifest["end_ns"] = max(parts_end) if parts_end else None
        final = self.path / info["name"]
        temp = self.path / f".{info['name']}.tmp"
        frame.write_parquet(temp, compression="zstd")
        _fsync(temp)
        os.replace(temp, final)
        _write_json(self.path / MANIFEST, manifest)


def _wire_window(frame: pl.DataFrame) -> tuple[int | None, int | None]:
    """Earliest and latest wire timestamp of the market messages in a chunk (ns)."""
    lists = frame.filter(pl.col("target").is_in(["GatewayTrade", "GatewayDepth"]))
    stamps = (
        lists.select(pl.col("payload").str.json_decode(_STAMPS).alias("i"))
        .explode("i")
        .drop_nulls("i")
        .unnest("i")["timestamp"]
    )
    quotes = frame.filter(pl.col("target") == "GatewayQuote")
    quote_stamps = quotes.select(pl.col("payload").str.json_decode(_QUOTE_STAMP).alias("q"))
    if quote_stamps.height:
        stamps = pl.concat([stamps, quote_stamps.unnest("q")["timestamp"]])
    stamps = stamps.drop_nulls()
    if stamps.len() == 0:
        return None, None
    parsed = stamps.str.to_datetime(_WIRE_FORMAT, time_unit="ns", strict=False)
    ns = parsed.dt.epoch("ns")
    bad = stamps.filter(ns.is_null())
    values = ns.drop_nulls().to_list()
    for text in bad.to_list():  # other ISO forms (`Z`, naive): the SDK's own parser
        try:
            values.append(parse_ts_ns(text))
        except ValueError:
            continue
    if not values:
        return None, None
    return min(values), max(values)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2))
    _fsync(temp)
    os.replace(temp, path)


def _to_ns(value: datetime | int | None) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise TypeError(f"expected a datetime or ns int, got {value!r}")


def instrument_wire(instrument: Any) -> dict[str, Any]:
    """An `Instrument` as the gateway's ContractModel dict (what a replay needs of it)."""
    return {
        "id": instrument.id,
        "name": instrument.name,
        "description": instrument.description,
        "tickSize": float(instrument.tick_size),
        "tickValue": float(instrument.tick_value),
        "activeContract": bool(instrument.active_contract),
        "symbolId": instrument.symbol_id,
    }


class SessionRecorder:
    """Records what a suite's real-time client receives (market data and the account's own
    order, position, fill and balance events) to a recording directory.

    Starts on construction. The suite's current book and quote are written first as `snapshot`
    rows (depth and quotes only send changes, so a replay needs the starting state).
    `contracts` limits market data to some contract ids (default: all that arrive).
    """

    def __init__(
        self,
        suite: Any,
        path: str | Path,
        *,
        chunk_rows: int = 50_000,
        market: bool = True,
        user: bool = True,
        contracts: list[str] | None = None,
    ) -> None:
        if not market and not user:
            raise ValueError("nothing to record: enable market and/or user events")
        self.suite = suite
        self.writer = RecordingWriter(path, chunk_rows=chunk_rows)
        self.path = self.writer.path
        self._contracts = None if contracts is None else frozenset(contracts)
        instrument = getattr(suite, "instrument", None)
        if instrument is not None:
            self.writer.contracts[instrument.id] = instrument_wire(instrument)
        account = getattr(suite.client, "account_info", None)
        self.writer.account_id = getattr(account, "id", None)
        self._seen: set[str] = set()
        rt = suite.realtime
        self._hooks: list[tuple[Any, Any]] = []
        if market:
            self._snapshot()
            for event, target in (
                (rt.trade_event, "GatewayTrade"),
                (rt.quote_event, "GatewayQuote"),
                (rt.depth_event, "GatewayDepth"),
            ):
                self._hook(event, self._market_handler(target))
        if user:
            for event, target in (
                (rt.order_event, "GatewayUserOrder"),
                (rt.position_event, "GatewayUserPosition"),
                (rt.user_trade_event, "GatewayUserTrade"),
                (rt.account_event, "GatewayUserAccount"),
            ):
                self._hook(event, self._user_handler(target))
        self._hook(rt.state_event, self._on_state)
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"SessionRecorder({str(self.path)!r}, {state}, rows={self.rows})"

    @property
    def rows(self) -> int:
        """Messages recorded so far (written or waiting in the current chunk)."""
        return self.writer.rows + len(self.writer._recv)

    async def __aenter__(self) -> SessionRecorder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, *, end: datetime | int | None = None) -> dict[str, Any]:
        """Stop recording, look up the specs of other contracts seen, write the final manifest
        (returned). `end` extends the recorded window to that instant (ns or datetime)."""
        if self._closed:
            return self.writer.close()
        self._closed = True
        for event, handler in self._hooks:
            event -= handler
        for contract_id in sorted(self._seen - set(self.writer.contracts)):
            try:
                instrument = await self.suite.client.get_instrument(contract_id)
            except Exception as exc:  # the recording stays usable without that contract
                logger.warning("no contract spec for %s in the recording: %s", contract_id, exc)
                continue
            self.writer.contracts[contract_id] = instrument_wire(instrument)
        return self.writer.close(end_ns=_to_ns(end))

    # -- hot path -------------------------------------------------------------------------

    def _hook(self, event: Any, handler: Any) -> None:
        event += handler
        self._hooks.append((event, handler))

    def _market_handler(self, target: str) -> Any:
        add = self.writer.add
        seen = self._seen
        wanted = self._contracts

        def handler(contract_id: str, data: Any) -> None:
            if wanted is not None and contract_id not in wanted:
                return
            if contract_id not in seen:
                seen.add(contract_id)
            add(target, contract_id, None, data)

        return handler

    def _user_handler(self, target: str) -> Any:
        add = self.writer.add

        def handler(data: dict[str, Any], action: int | None) -> None:
            add(target, data.get("contractId"), action, data)

        return handler

    def _on_state(self, hub: str, state: Any) -> None:
        self.writer.add("connection", None, None, {"hub": hub, "state": str(state)})

    def _snapshot(self) -> None:
        """The book and merged quote the suite holds now, as `snapshot` rows."""
        book = getattr(self.suite, "orderbook", None)
        if book is None:
            return
        cid = book.contract_id
        if self._contracts is not None and cid not in self._contracts:
            return
        stamp = book.last_update
        if stamp is not None:
            items: list[dict[str, Any]] = [
                {"timestamp": stamp, "type": 6, "price": 0, "volume": 0, "currentVolume": 0}
            ]
            for dom, side in ((1, book.asks), (2, book.bids)):
                items.extend(
                    {"timestamp": stamp, "type": dom, "price": p, "volume": v, "currentVolume": v}
                    for p, v in side.items()
                )
            self.writer.add("GatewayDepth", cid, None, items, snapshot=True)
        quote = book.quote
        if quote:
            self.writer.add("GatewayQuote", cid, None, quote, snapshot=True)
        self._seen.add(cid)
