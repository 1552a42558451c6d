"""The one home of the retry policy for everything that talks HTTP.

Exponential backoff on connection errors, timeouts and 429/5xx answers; a 429 or
503 with ``Retry-After`` (seconds or an HTTP date) waits as long as the server
asks, up to ``MAX_RETRY_AFTER_S``. STAC API calls (pystac-client) and asset
downloads use the same policy: ``retry_policy`` for urllib3, ``session`` for
requests with a default timeout, ``backoff_delays`` for the download loop's own
retries of bodies that arrive truncated or corrupt.
"""

from __future__ import annotations

from itertools import takewhile
from typing import Any

from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_TIMEOUT_S = (10.0, 60.0)
"""(connect, read) timeouts in seconds."""
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
"""Longest exponential backoff between two attempts, seconds."""
MAX_RETRY_AFTER_S = 300.0
"""Longest ``Retry-After`` wait, seconds; a server asking for more is retried after this long."""

Timeout = float | tuple[float, float]


def retry_policy(total: int = DEFAULT_RETRIES, backoff_s: float = DEFAULT_BACKOFF_S) -> Retry:
    """A urllib3 ``Retry`` with exponential backoff that honours ``Retry-After``.

    Args:
        total: the most attempts after the first one.
        backoff_s: first backoff in seconds; doubles each retry (0.5, 1, 2, 4 ...),
            at most ``MAX_BACKOFF_S``.
    """
    return _CappedRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=total,
        backoff_factor=backoff_s,
        backoff_max=MAX_BACKOFF_S,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def backoff_delays(retries: int = DEFAULT_RETRIES, backoff_s: float = DEFAULT_BACKOFF_S) -> list[float]:
    """The waits (seconds) before each retry: ``backoff_s * 2**k``, capped at ``MAX_BACKOFF_S``."""
    return [min(backoff_s * 2**k, MAX_BACKOFF_S) for k in range(retries)]


def session(
    *,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: Timeout = DEFAULT_TIMEOUT_S,
    headers: dict[str, str] | None = None,
) -> Any:
    """A ``requests.Session`` with the retry policy mounted and a default timeout on every request.

    Args:
        retries: the most retries of one request.
        backoff_s: first backoff, seconds.
        timeout_s: seconds, or (connect, read) seconds, for requests that pass none.
        headers: sent with every request.
    """
    import requests
    from requests.adapters import HTTPAdapter

    class _TimeoutSession(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("timeout", timeout_s)
            return super().request(method, url, *args, **kwargs)

    s = _TimeoutSession()
    s.trust_env = True
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff_s), pool_maxsize=16)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    if headers:
        s.headers.update(headers)
    return s


def retries_of(response: Any) -> int:
    """How many retries urllib3 made before ``response`` (a requests Response) came back."""
    raw = getattr(response, "raw", None)
    history = getattr(getattr(raw, "retries", None), "history", None)
    return len(history) if history else 0


class _CappedRetry(Retry):
    """``Retry`` with the project's schedule: the k-th retry waits ``backoff_factor * 2**(k-1)`` seconds.

    urllib3's own schedule retries the first time at once (0, 2f, 4f, ...); a
    server that just failed deserves a pause. ``Retry-After`` waits are bounded
    by ``MAX_RETRY_AFTER_S``.
    """

    def get_backoff_time(self) -> float:
        n = len(list(takewhile(lambda x: x.redirect_location is None, reversed(self.history))))
        if n == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (n - 1)))

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        return None if after is None else min(after, MAX_RETRY_AFTER_S)
