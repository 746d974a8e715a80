"""Real-time client for the ProjectX SignalR hubs: supervised connections, batched dispatch."""

from .client import (
    TOPSTEPX_MARKET_HUB,
    TOPSTEPX_USER_HUB,
    ProjectXRealtimeClient,
    SubscriptionError,
    create_realtime_client,
)
from .dispatch import Event, EventStream
from .supervisor import ConnectionState
from .transport import (
    HubInvocationError,
    HubUnauthorizedError,
    RealtimeConnectionError,
    RealtimeError,
)

__all__ = [
    "TOPSTEPX_MARKET_HUB",
    "TOPSTEPX_USER_HUB",
    "ConnectionState",
    "Event",
    "EventStream",
    "HubInvocationError",
    "HubUnauthorizedError",
    "ProjectXRealtimeClient",
    "RealtimeConnectionError",
    "RealtimeError",
    "SubscriptionError",
    "create_realtime_client",
]
