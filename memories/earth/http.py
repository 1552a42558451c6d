"""The one home of the retry policy for everything that talks HTTP.

Exponential backoff on connection errors, timeouts and 429/5xx answers; a 429 or
503 with ``Retry-After`` waits as long as the server asks.
"""

from __future__ import annotations

from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_TIMEOUT_S = (10.0, 60.0)
"""(connect, read) timeouts in seconds."""


def retry_policy(total: int = 5, backoff_s: float = 0.5) -> Retry:
    """A urllib3 ``Retry`` with exponential backoff that honours ``Retry-After``.

    Args:
        total: the most attempts after the first one.
        backoff_s: first backoff in seconds; doubles each retry (0.5, 1, 2, 4 ...).
    """
    return Retry(
        total=total,
        connect=total,
        read=total,
        status=total,
        backoff_factor=backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
