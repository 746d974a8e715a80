"""Retry policy for reads and auth calls (tenacity); mutations never go through it.

Retried: network failures, timeouts, HTTP 5xx and 429. Waits grow exponentially with
jitter; a 429's Retry-After is honoured (plus jitter) unless it exceeds `max_retry_after`,
in which case the `RateLimitError` is raised at once instead of stalling the caller.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState

from .config import ClientSettings
from .errors import ProjectXConnectionError, RateLimitError, ServerError

TRANSIENT = (ProjectXConnectionError, ServerError, RateLimitError)


def is_transient(exc: BaseException | None) -> bool:
    """True for failures worth another attempt of a *safe* request."""
    return isinstance(exc, TRANSIENT)


class ReadRetryPolicy:
    """Builds a fresh tenacity `AsyncRetrying` per call from the client settings."""

    def __init__(
        self, settings: ClientSettings, on_retry: Callable[[RetryCallState], None] | None = None
    ) -> None:
        self.on_retry = on_retry
        self.attempts = settings.retry_attempts
        self.initial = settings.retry_initial_wait
        self.max_wait = settings.retry_max_wait
        self.max_retry_after = settings.max_retry_after

    def __repr__(self) -> str:
        return f"ReadRetryPolicy(attempts={self.attempts}, initial={self.initial}s)"

    def retrying(self, *, path: str) -> AsyncRetrying:
        """Retries for a call to `path`; failures of *other* requests made on its behalf (a
        login inside a read) already had their own retries and are not repeated."""

        def should_retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return is_transient(exc) and getattr(exc, "endpoint", path) == path

        return AsyncRetrying(
            retry=should_retry,
            stop=self._should_stop,
            wait=self._wait,
            before_sleep=self.on_retry,
            reraise=True,
        )

    def _should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        return (
            isinstance(exc, RateLimitError)
            and exc.retry_after is not None
            and exc.retry_after > self.max_retry_after
        )

    def _wait(self, state: RetryCallState) -> float:
        ceiling = min(self.max_wait, self.initial * 2 ** (state.attempt_number - 1))
        backoff = random.uniform(self.initial / 2, ceiling)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return exc.retry_after + random.uniform(0, self.initial)
        return backoff
