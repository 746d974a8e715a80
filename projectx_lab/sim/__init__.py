"""Local ProjectX gateway simulator: the gateway's REST paths and SignalR hubs, a seeded market
and paper accounts."""

from .config import AccountConfig, SimConfig
from .server import Simulator

__all__ = ["AccountConfig", "SimConfig", "Simulator"]
