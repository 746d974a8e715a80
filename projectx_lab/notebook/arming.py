"""Safety gate of the order magics: paper accounts trade freely, everything else only when armed.

Policy. An account is *paper* only when both hold: the client talks to an in-process `Simulator`
(`%px_connect` without `--env`, or `--sim NAME`) and the account reports `simulated: true`.
Everything else needs `%px_arm ACCOUNT --max-size N` first: a `simulated: false` account even on
the simulator, and every account reached through `--env` — the real gateway reports practice
*and* evaluation accounts as `simulated: true` (gateway-api.md §4.1), so the flag alone cannot
be trusted there. Arming is per (gateway URL, account id), capped at a size that bounds each
order and the position it can leave on a contract, and is dropped on (re)connect and disconnect.
"""

from __future__ import annotations

from dataclasses import dataclass

from projectx_lab.client.models import Account

from .magic_args import MagicUsageError


class TradingRefusedError(MagicUsageError):
    """An order magic refused by the safety gate; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Armed:
    """Trading allowed on one account of one gateway, up to `max_size` contracts."""

    api_url: str
    account_id: int
    account_name: str
    max_size: int

    def __str__(self) -> str:
        return f"{self.account_name} (id {self.account_id}) up to {self.max_size} contract(s)"


def is_paper(account: Account, embedded_sim: bool) -> bool:
    """True when `account` is a simulated account of an in-process simulator."""
    return embedded_sim and account.simulated


class Arming:
    """The armed accounts of one magics session."""

    def __init__(self) -> None:
        self._armed: dict[tuple[str, int], Armed] = {}

    def __len__(self) -> int:
        return len(self._armed)

    def arm(self, api_url: str, account: Account, max_size: int) -> Armed:
        """Allow order magics on `account` up to `max_size` contracts (replaces an earlier arm)."""
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise MagicUsageError(f"--max-size must be a positive whole number, got {max_size!r}")
        armed = Armed(api_url, account.id, account.name, max_size)
        self._armed[(api_url, account.id)] = armed
        return armed

    def disarm(self, account_name: str | None = None) -> list[Armed]:
        """Withdraw arming of one account (by name or id) or of all; returns what was removed."""
        if account_name is None:
            removed = list(self._armed.values())
            self._armed.clear()
            return removed
        wanted = account_name.strip().casefold()
        keys = [k for k, a in self._armed.items()
                if a.account_name.casefold() == wanted or str(a.account_id) == wanted]  # fmt: skip
        return [self._armed.pop(k) for k in keys]

    def get(self, api_url: str, account: Account) -> Armed | None:
        return self._armed.get((api_url, account.id))

    def require(
        self,
        api_url: str,
        account: Account,
        embedded_sim: bool,
        sizes: list[tuple[int, int]] | None = None,
    ) -> Armed | None:
        """Raise `TradingRefusedError` unless the account may trade. `sizes` lists, per order,
        (order size, absolute position it can leave on its contract), checked against the cap.
        Returns the arm in force (None for a paper account)."""
        if is_paper(account, embedded_sim):
            return None
        armed = self.get(api_url, account)
        if armed is None:
            why = (
                "is not a simulated account"
                if not account.simulated
                else f"is on a real gateway ({api_url}), where practice and evaluation accounts "
                "also report simulated"
            )
            raise TradingRefusedError(
                f"refused: account {account.name!r} (id {account.id}) {why}, and trading is not "
                f"armed for it. Nothing was sent. To allow orders: "
                f"%px_arm {account.name} --max-size N"
            )
        for size, exposure in sizes or ():
            if size > armed.max_size:
                raise TradingRefusedError(
                    f"refused: size {size} exceeds the armed maximum of {armed.max_size} for "
                    f"{account.name!r}. Nothing was sent."
                )
            if exposure > armed.max_size:
                raise TradingRefusedError(
                    f"refused: this could leave a position of {exposure} contracts, above the "
                    f"armed maximum of {armed.max_size} for {account.name!r}. Nothing was sent."
                )
        return armed
