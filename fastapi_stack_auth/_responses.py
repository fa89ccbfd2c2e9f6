"""Judging Stack Auth's answers: the real status, a capped body, the error envelope as typed
exceptions, and what upstream text may reach a log line."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import httpx

from ._exceptions import (
    StackAPIError,
    StackBadResponseError,
    StackUnavailableError,
    stack_api_error,
)

DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER = 5, 300
#: Stack answers with small JSON documents: a longer (decoded) body is refused, unread past this.
MAX_BODY_BYTES = 1 << 20
#: Stack's error code and message are cut to this many characters.
MAX_CODE_CHARS, MAX_MESSAGE_CHARS = 100, 1000

_STATUS = re.compile(r"[1-5][0-9][0-9]")
_SECONDS = re.compile(r"[0-9]{1,6}")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def unavailable(status: int, response: httpx.Response) -> tuple[StackUnavailableError, int | None]:
    """The error for a 429/5xx, and Stack's ``Retry-After`` in seconds (``None``: none we can
    read). Our own client is told Stack's (at least 1 s), else 5 s."""
    # Only plain ASCII delta-seconds (str.isdigit() would accept "²", which int() refuses). An
    # HTTP date is not read: the clocks of two machines cannot be compared to the second.
    value = response.headers.get("retry-after", "").strip()
    wait = min(int(value), MAX_RETRY_AFTER) if _SECONDS.fullmatch(value) else None
    told = DEFAULT_RETRY_AFTER if wait is None else max(1, wait)
    return StackUnavailableError(f"HTTP {status}", told), wait


def status_of(response: httpx.Response) -> int:
    """The status; for a 200, the real one if Stack was made to send it as
    ``x-stack-actual-status`` (``x-stack-override-error-status``, which we never ask for)."""
    status = response.status_code
    if status == 200:
        actual = response.headers.get("x-stack-actual-status", "")
        if _STATUS.fullmatch(actual):
            return int(actual)
    return status


def declares_over(content_length: str, limit: int) -> bool:
    """Whether a ``Content-Length`` value declares more than ``limit`` bytes. A value that is
    not plain ASCII digits declares nothing (``str.isdigit`` also takes "²", which ``int``
    refuses), and one too long for ``int`` is over any limit."""
    if not (content_length.isascii() and content_length.isdigit()):
        return False
    digits = content_length.lstrip("0")
    return len(digits) > len(str(limit)) or int(digits or "0") > limit


async def read_body(response: httpx.Response) -> bytes:
    """The body ``_decode`` will read (none for a 429/5xx, or a 4xx without Stack's envelope),
    decoded; ``StackBadResponseError`` past ``MAX_BODY_BYTES``, without reading on."""
    status = status_of(response)
    known = response.headers.get("x-stack-known-error")
    if status == 429 or status >= 500 or (status >= 400 and not known):
        return b""
    if declares_over(response.headers.get("content-length", ""), MAX_BODY_BYTES):
        raise StackBadResponseError(f"the response body is over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb is cut short too
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise StackBadResponseError(f"the response body is over {MAX_BODY_BYTES} bytes")
    return bytes(body)


def decode(response: httpx.Response, body: bytes, ok: tuple[int, ...]) -> Any:
    status = status_of(response)
    known = response.headers.get("x-stack-known-error")
    if status == 429 or status >= 500:
        raise unavailable(status, response)[0]
    if status >= 400 or known:
        raise _api_error(status, known, body)
    if status not in ok:
        raise StackBadResponseError(f"unexpected HTTP {status}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise StackBadResponseError("response is not JSON") from None


def _api_error(status: int, known: str | None, body: bytes) -> StackAPIError:
    envelope: Any = None
    if known:
        with contextlib.suppress(ValueError, RecursionError):  # UnicodeDecodeError included
            envelope = json.loads(body)
    if not isinstance(envelope, dict):
        return stack_api_error(status, _code(known), "", None)
    # The message is in ``error``; the published spec says ``message``, so read both.
    message = envelope.get("error") or envelope.get("message") or ""
    details = envelope.get("details")
    details = details if isinstance(details, dict) else None
    return stack_api_error(status, _code(envelope.get("code") or known), _text(message), details)


def _code(value: object) -> str | None:
    # Stack's code ends up in our log lines (``to_auth_error``): printable ASCII only, so that
    # a newline or an escape sequence from upstream cannot forge or hide a line.
    return _NOT_PRINTABLE_ASCII.sub("", str(value or ""))[:MAX_CODE_CHARS] or None


def _text(value: object) -> str:
    # Stack's message is for the app's own eyes (we never log it): still one line of
    # printable characters, and bounded.
    return "".join(c if c.isprintable() else " " for c in str(value)[:MAX_MESSAGE_CHARS])
