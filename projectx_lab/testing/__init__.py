"""Fault scenarios for a whole `TradingSuite` against the simulator: shared by the fault tests
(`tests/faults`) and the scorecard (`bench/scorecard.py`), so both measure the same thing.

Each scenario takes a `Rig` (simulator + client + suite, fast timings) and returns a report of
user-visible outcomes; nothing here mocks our own client, transport or managers.
"""

from .rig import Rig, RigOptions

__all__ = ["Rig", "RigOptions"]
