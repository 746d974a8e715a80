"""A recorded session opened for study (polars frames of its tape, quotes, depth and fills) or
for replay through the simulator (`Recording(path).simulator(speed=20)`).

Replay itself lives in the simulator (`projectx_lab.sim.replay_source`): a replaying simulator
serves the recording through the gateway's REST paths and hubs, so a notebook or strategy runs
against it unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from projectx_lab.sim import Simulator
from projectx_lab.sim.replay_source import parse_times, read_events, read_manifest

NS = 1_000_000_000
_TRADES = pl.List(
    pl.Struct({"price": pl.Float64, "timestamp": pl.String, "type": pl.Int64, "volume": pl.Int64})
)


def _utc(ts_ns: int | None) -> datetime | None:
    if ts_ns is None:
        return None
    secs, rem = divmod(ts_ns, NS)
    return datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000)


def _decoded(rows: pl.DataFrame, *keep: str, explode: bool = False) -> pl.DataFrame:
    """`rows`' kept columns plus the fields of their JSON payloads (schema inferred)."""
    if rows.height == 0:
        return rows.select(keep)
    data = rows["payload"].str.json_decode(infer_schema_length=None).alias("d")
    frame = rows.select(keep).with_columns(data)
    if explode:
        frame = frame.explode("d").drop_nulls("d")
    return frame.unnest("d")


def _stamp_column(stamps: pl.Series) -> pl.Series:
    return pl.Series("timestamp", parse_times(stamps), dtype=pl.Int64).cast(
        pl.Datetime("ns", "UTC")
    )


class Recording:
    """A session recording directory: manifest facts plus decoded views of its messages."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self._events: pl.DataFrame | None = None

    def __repr__(self) -> str:
        return (
            f"Recording({str(self.path)!r}, {self.start} → {self.end}, rows={self.rows}, "
            f"contracts={sorted(self.contracts)}, complete={self.complete})"
        )

    @property
    def start(self) -> datetime | None:
        """Earliest recorded wire timestamp (UTC)."""
        return _utc(self.manifest.get("start_ns"))

    @property
    def end(self) -> datetime | None:
        """Latest recorded wire timestamp (UTC), or the end given when it was closed."""
        return _utc(self.manifest.get("end_ns"))

    @property
    def rows(self) -> int:
        """Messages recorded (in the parts the manifest lists)."""
        return int(self.manifest.get("rows") or 0)

    @property
    def complete(self) -> bool:
        """False for a recording that was not closed (it replays up to its last part)."""
        return bool(self.manifest.get("complete"))

    @property
    def contracts(self) -> dict[str, dict[str, Any]]:
        """Recorded contracts: id → ContractModel dict."""
        return dict(self.manifest.get("contracts") or {})

    def events(self) -> pl.DataFrame:
        """Every recorded message, raw (`payload` is the JSON of the message's data)."""
        if self._events is None:
            self._events = read_events(self.path, self.manifest)
        return self._events

    def _rows(self, target: str, contract_id: str | None) -> pl.DataFrame:
        frame = self.events().filter(pl.col("target") == target)
        if contract_id is not None:
            frame = frame.filter(pl.col("contract_id") == contract_id)
        return frame

    def trades(self, contract_id: str | None = None) -> pl.DataFrame:
        """The tape: one row per trade print (timestamp UTC, contract_id, price, volume, side)."""
        items = (
            self._rows("GatewayTrade", contract_id)
            .select("contract_id", pl.col("payload").str.json_decode(_TRADES).alias("i"))
            .explode("i")
            .drop_nulls("i")
            .unnest("i")
        )
        return pl.DataFrame(
            [
                _stamp_column(items["timestamp"]),
                items["contract_id"],
                items["price"],
                items["volume"],
                items["type"].alias("side"),
            ]
        )

    def quotes(self, contract_id: str | None = None) -> pl.DataFrame:
        """Quote messages as sent (partial: a null field means unchanged), with a parsed
        `time` column."""
        rows = self._rows("GatewayQuote", contract_id)
        decoded = _decoded(rows, "contract_id", "snapshot")
        if "timestamp" in decoded.columns:
            decoded = decoded.with_columns(_stamp_column(decoded["timestamp"]).alias("time"))
        return decoded

    def depth(self, contract_id: str | None = None) -> pl.DataFrame:
        """Depth items as sent, one row each, with `seq` (message) and a parsed `time`."""
        rows = self._rows("GatewayDepth", contract_id)
        items = _decoded(rows, "seq", "contract_id", "snapshot", explode=True)
        if "timestamp" in items.columns:
            items = items.with_columns(_stamp_column(items["timestamp"]).alias("time"))
        return items

    def user_events(self, target: str = "GatewayUserTrade") -> pl.DataFrame:
        """The account's own events of one target (orders, positions, fills, balances)."""
        return _decoded(self._rows(target, None), "seq", "action")

    def fills(self) -> pl.DataFrame:
        """The account's fills (`GatewayUserTrade`) in arrival order."""
        return self.user_events("GatewayUserTrade")

    def simulator(self, speed: float = 1.0, **options: Any) -> Simulator:
        """A (not yet started) simulator replaying this recording at `speed`."""
        return Simulator(replay=self.path, speed=speed, **options)
