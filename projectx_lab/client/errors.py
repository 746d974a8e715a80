"""Exception hierarchy of the client and the gateway's per-endpoint error-code tables.

Every error carries the endpoint and, for business failures (`success: false`), the gateway's
`errorCode`, its name for that endpoint and `errorMessage`. Texts never contain secrets.
"""

from __future__ import annotations

from typing import Any

# Per-endpoint enums (gateway-api.md §4): the same integer means different things per endpoint.
ERROR_CODES: dict[str, dict[int, str]] = {
    "/api/Auth/loginKey": {
        1: "UserNotFound",
        2: "PasswordVerificationFailed",
        3: "InvalidCredentials",
        4: "AppNotFound",
        5: "AppVerificationFailed",
        6: "InvalidDevice",
        7: "AgreementsNotSigned",
        8: "UnknownError",
        9: "ApiSubscriptionNotFound",
        10: "ApiKeyAuthenticationDisabled",
    },
    "/api/Auth/validate": {
        1: "InvalidSession",
        2: "SessionNotFound",
        3: "ExpiredToken",
        4: "UnknownError",
    },
    "/api/Contract/searchById": {1: "ContractNotFound"},
    "/api/History/retrieveBars": {
        1: "ContractNotFound",
        2: "UnitInvalid",
        3: "UnitNumberInvalid",
        4: "LimitInvalid",
    },
    "/api/Order/place": {
        1: "AccountNotFound",
        2: "OrderRejected",
        3: "InsufficientFunds",
        4: "AccountViolation",
        5: "OutsideTradingHours",
        6: "OrderPending",
        7: "UnknownError",
        8: "ContractNotFound",
        9: "ContractNotActive",
        10: "AccountRejected",
    },
    "/api/Order/modify": {
        1: "AccountNotFound",
        2: "OrderNotFound",
        3: "Rejected",
        4: "Pending",
        5: "UnknownError",
        6: "AccountRejected",
        7: "ContractNotFound",
    },
    "/api/Order/cancel": {
        1: "AccountNotFound",
        2: "OrderNotFound",
        3: "Rejected",
        4: "Pending",
        5: "UnknownError",
        6: "AccountRejected",
    },
    "/api/Order/search": {1: "AccountNotFound"},
    "/api/Order/searchOpen": {1: "AccountNotFound"},
    "/api/Order/searchById": {1: "OrderNotFound"},
    "/api/Position/searchOpen": {1: "AccountNotFound"},
    "/api/Position/closeContract": {
        1: "AccountNotFound",
        2: "PositionNotFound",
        3: "ContractNotFound",
        4: "ContractNotActive",
        5: "OrderRejected",
        6: "OrderPending",
        7: "UnknownError",
        8: "AccountRejected",
    },
    "/api/Position/partialCloseContract": {
        1: "AccountNotFound",
        2: "PositionNotFound",
        3: "ContractNotFound",
        4: "ContractNotActive",
        5: "InvalidCloseSize",
        6: "OrderRejected",
        7: "OrderPending",
        8: "UnknownError",
        9: "AccountRejected",
    },
    "/api/Trade/search": {1: "AccountNotFound"},
}

MUTATIONS = frozenset(
    {
        "/api/Order/place",
        "/api/Order/modify",
        "/api/Order/cancel",
        "/api/Position/closeContract",
        "/api/Position/partialCloseContract",
    }
)
# Codes that say "the gateway may still be working on it": resolved by reading back.
AMBIGUOUS_CODE_NAMES = frozenset({"OrderPending", "Pending", "UnknownError"})


class ProjectXError(Exception):
    """Base of every client error."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        error_code: int | None = None,
        error_name: str | None = None,
        gateway_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.error_code = error_code
        self.error_name = error_name
        self.gateway_message = gateway_message


class ValidationError(ProjectXError, ValueError):
    """Bad input caught before anything was sent."""


class AuthenticationError(ProjectXError):
    """Login or token refresh failed, or the gateway kept answering 401 after a re-login."""


class RateLimitError(ProjectXError):
    """HTTP 429 that retries could not absorb (or any 429 on a mutation, which is never retried).

    The gateway refuses a 429'd request before processing it; `retry_after` is in seconds.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NotFoundError(ProjectXError):
    """The thing asked for does not exist (or is not this user's)."""


class AccountNotFoundError(NotFoundError):
    """No such account, or not one of the caller's."""


class InstrumentNotFoundError(NotFoundError):
    """Unknown symbol or contract id; `close_matches` lists what the gateway does know."""

    def __init__(self, message: str, *, close_matches: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.close_matches = close_matches


class OrderNotFoundError(NotFoundError):
    """No such order on this account."""


class PositionNotFoundError(NotFoundError):
    """No open position on that contract."""


class RequestRejectedError(ProjectXError):
    """The gateway answered `success: false` (or HTTP 4xx) to a read."""


class OrderRejectedError(RequestRejectedError):
    """A place/modify/cancel/close was refused; `order_id` is set when the gateway assigned one."""

    def __init__(self, message: str, *, order_id: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.order_id = order_id


class OrderOutcomeUnknownError(ProjectXError):
    """A mutation's outcome stayed ambiguous after reading the order/position back.

    Nothing was retried. Look the order up later by `custom_tag` (placement) or `order_id`.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        custom_tag: str | None = None,
        order_id: int | None = None,
        state: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.operation = operation
        self.custom_tag = custom_tag
        self.order_id = order_id
        self.state = state


class ProjectXConnectionError(ProjectXError):
    """The request failed on the network. `request_sent` is False only when it surely never
    reached the server (connect failure, no free connection); then even a mutation is safe."""

    def __init__(self, message: str, *, request_sent: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.request_sent = request_sent


class ProjectXTimeoutError(ProjectXConnectionError):
    """No (complete) answer in time."""


class ServerError(ProjectXError):
    """HTTP 5xx from the gateway (retried for reads; ambiguous for mutations)."""

    def __init__(self, message: str, *, status: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status = status


_BY_NAME: dict[str, type[ProjectXError]] = {
    "AccountNotFound": AccountNotFoundError,
    "ContractNotFound": InstrumentNotFoundError,
    "OrderNotFound": OrderNotFoundError,
    "PositionNotFound": PositionNotFoundError,
}


# What to do about the business failures a trader can meet with valid input (gateway texts for
# these are often empty).
_HINTS: dict[str, str] = {
    "OutsideTradingHours": (
        "the contract's market is closed (CME futures pause 16:00-17:00 Chicago daily and from "
        "Friday 16:00 to Sunday 17:00); send the order when the session is open"
    ),
    "InsufficientFunds": "the account's balance does not cover this order; reduce the size",
    "AccountViolation": (
        "the account has breached one of its risk rules (daily loss, drawdown) and may not "
        "trade until the firm resets it"
    ),
    "ContractNotActive": (
        "that contract is not the active one (an expired or not-yet-front month); look the "
        "symbol up again with get_instrument()"
    ),
    "AccountRejected": (
        "this account may not trade (an ended evaluation or a read-only account); pick "
        "another with select_account()"
    ),
}


def error_name(endpoint: str, code: int) -> str:
    """The gateway's name for `code` on `endpoint` (`"Code<n>"` when undocumented)."""
    return ERROR_CODES.get(endpoint, {}).get(code, f"Code{code}")


def envelope_error(endpoint: str, payload: dict[str, Any]) -> ProjectXError:
    """The exception for a `success: false` envelope, chosen by the endpoint's code table."""
    code = payload.get("errorCode")
    code = code if isinstance(code, int) else -1
    name = error_name(endpoint, code)
    message = payload.get("errorMessage")
    text = f"{endpoint} failed: {name} (code {code})" + (f": {message}" if message else "")
    if name in _HINTS:
        text += f" - {_HINTS[name]}"
    kw: dict[str, Any] = {
        "endpoint": endpoint,
        "error_code": code,
        "error_name": name,
        "gateway_message": message,
    }
    if endpoint.startswith("/api/Auth/"):
        return AuthenticationError(text, **kw)
    cls = _BY_NAME.get(name)
    if cls is not None:
        return cls(text, **kw)
    if endpoint in MUTATIONS:
        order_id = payload.get("orderId")
        return OrderRejectedError(
            text, order_id=order_id if isinstance(order_id, int) else None, **kw
        )
    return RequestRejectedError(text, **kw)
