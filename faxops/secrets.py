"""Every secret value faxops knows, and the one function that keeps them out of everything it writes.

Values come in as they are resolved or obtained: ``${env:…}`` / ``${file:…}`` references
(:func:`faxops.fields.resolve_secret`), the HTTP Basic string ``user:password``, the token of every
``Authorization`` header a provider call sends (OAuth tokens fetched at run time included), and the
password of a URL (``https://user:password@host``). Each is registered with the forms it travels in
(base64, URL-quoted, JSON-, HTML- and CSV-escaped), because a provider that echoes our credentials may
echo any of them.

The sinks call :func:`scrub` (or :func:`scrub_event`) just before anything leaves the process:
error messages (``FaxopsError``), stdout and stderr (``cli.main`` wraps both, so rich, JSON documents and
reports printed to stdout are covered alike), the debug log, report files, the report webhook's body and
e-mail, and the free-text fields of journal events (hence of the lockfile).

Rules a newcomer could undo by accident:

* Values shorter than :data:`MIN_LENGTH` characters are not scrubbed: masking "ab" or "1" would mangle
  every number and word faxops prints, and such a secret is guessable anyway. The Basic string and its
  base64 form are always long enough, so the ``Authorization`` header is scrubbed even then.
* Identifiers (user names, OAuth client ids) are resolved like secrets but are not secrets: they are
  not registered on their own (a user name such as ``faxops`` would erase the program's name from every
  message). Only ``user:password`` is.
* Journal events are scrubbed field by field (provider reasons, codes, raw statuses, notes), never whole:
  a numeric secret that happens to be part of a fax number or a job ID must not corrupt the state.
"""

from __future__ import annotations

import base64
import html
import io
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

MIN_LENGTH = 4
MASK = "***"
#: journal event fields that carry a provider's or a person's words (never identities, times or numbers)
FREE_TEXT = frozenset({"reason", "message", "code", "raw", "raw_status", "evidence", "note", "detail", "error"})

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> Iterable[str]:
    yield value
    yield base64.b64encode(value.encode()).decode()
    yield quote(value, safe="")
    yield quote(value)
    json_form = orjson.dumps(value).decode()[1:-1]
    yield json_form
    yield json_form.replace("/", "\\/")  # PHP-style JSON escapes slashes
    yield html.escape(value)
    yield value.replace('"', '""')


def register(value: str | None) -> None:
    """Remember a secret (and the forms it travels in): from now on :func:`scrub` removes it."""
    global _pattern
    if not value or len(value) < MIN_LENGTH:
        return
    with _lock:
        new = {form for form in _forms(value) if len(form) >= MIN_LENGTH} - _values
        if not new:
            return
        _values.update(new)
        # Longest first, so that a value is never half-masked by a shorter one it contains.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def register_basic(username: str, password: str) -> None:
    """An HTTP Basic pair: the password, ``user:password`` and (through its forms) its base64."""
    register(password)
    register(f"{username}:{password}")


def register_authorization(header: str | None) -> None:
    """The credential of an ``Authorization`` header (``Bearer T``, ``Basic B64`` or a bare token)."""
    if header:
        register(header.partition(" ")[2].strip() or header.strip())


def register_url(url: str | None) -> None:
    """The password of a URL such as ``https://user:password@host/`` (database and proxy URLs)."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register(password)
        register(unquote(password))


def known() -> bool:
    """Whether any secret is registered (sinks skip their work when none is)."""
    return _pattern is not None


def scrub(text: str) -> str:
    """``text`` with every registered secret (in any of its forms) replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def scrub_bytes(data: bytes) -> bytes:
    """:func:`scrub` for UTF-8 bytes (reports, webhook bodies)."""
    if _pattern is None:
        return data
    return scrub(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def scrub_event(event: Any) -> Any:
    """A copy of a journal event whose free-text fields are scrubbed (recursively, e.g. ``updates``)."""
    if _pattern is None:
        return event
    if isinstance(event, dict):
        return {k: scrub(v) if isinstance(v, str) and k in FREE_TEXT else scrub_event(v) for k, v in event.items()}
    if isinstance(event, list):
        return [scrub_event(v) for v in event]
    return event


def clear() -> None:
    """Forget every secret (each CLI invocation starts afresh, as a new process would)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


class ScrubbedStream(io.TextIOBase):
    """A text stream that scrubs what is written before passing it on (``cli.main`` wraps stdout/stderr)."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(self.stream.isatty())

    def fileno(self) -> int:
        return int(self.stream.fileno())

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.stream, "encoding", None) or "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
