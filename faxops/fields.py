"""Building blocks shared by the manifest and the provider settings models.

Kept apart from ``manifest.py`` because provider modules need them and the manifest imports the
provider registry.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from faxops import secrets

_SECRET_RE = re.compile(r"^\$\{(env|file):([^}]+)\}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class StrictModel(BaseModel):
    """Base of every manifest model: unknown keys are errors, values are immutable."""

    # extra="forbid": a misspelt key (max_cots:) must be an error, not a guard that silently does nothing. frozen: a
    # loaded manifest is the input the plan and the lockfile digest describe; nothing may edit it.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_secret_ref(value: Any) -> Any:
    if isinstance(value, str) and not _SECRET_RE.match(value):
        raise ValueError(
            "secrets are never written in a manifest: use a reference such as ${env:FAX_PASSWORD} "
            "or ${file:/run/secrets/fax_password}"
        )
    return value


SecretRef = Annotated[
    str,
    BeforeValidator(_check_secret_ref),
    Field(
        pattern=r"^\$\{(env|file):[^}]+\}$",
        description="A reference to a secret: ${env:NAME} or ${file:PATH}. Never the secret itself.",
    ),
]


def secret_problem(ref: str, base_dir: Path) -> str | None:
    """Why ``ref`` cannot be resolved, or None when it can (the value itself is not returned)."""
    match = _SECRET_RE.match(ref)
    if match is None:
        return f"{ref!r} is not a secret reference"
    kind, name = match.groups()
    if kind == "env":
        if not os.environ.get(name):
            return f"environment variable {name} is not set"
        return None
    path = (base_dir / name).expanduser()
    # Relative to the manifest, not to the working directory: CI and a laptop run faxops from different places.
    if not path.is_file():
        return f"secret file {path} does not exist"
    if not os.access(path, os.R_OK):
        return f"secret file {path} is not readable"
    return None


def resolve_secret(ref: str, base_dir: Path, *, identifier: bool = False) -> str:
    """The secret a reference points at, registered with ``faxops.secrets`` so that no output shows it.

    ``identifier`` marks a user name or client id: resolved the same way, but not a secret on its own
    (see ``faxops.secrets`` for why it is not scrubbed)."""
    problem = secret_problem(ref, base_dir)
    if problem is not None:
        from faxops.errors import InputError

        raise InputError(problem)
    match = _SECRET_RE.match(ref)
    assert match is not None
    kind, name = match.groups()
    path = (base_dir / name).expanduser()
    # strip(): a secret file written with `echo` ends in a newline that is not part of the password.
    value = os.environ[name] if kind == "env" else path.read_text(encoding="utf-8").strip()
    # Registered the moment it is read, before any caller can put it in a message: masking is only as good as the
    # first place a secret could leak.
    if not identifier:
        secrets.register(value)
    return value


def parse_duration(value: Any) -> Any:
    """Accept ``30s``, ``200ms``, ``48h``, ``2d`` or plain seconds; produce a timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number is seconds, as YAML users expect from timeouts; a negative one is a typo, not "never".
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration such as 30s, 200ms, 15m, 48h or 2d")
        amount, unit = match.groups()
        return timedelta(seconds=float(amount) * _DURATION_UNITS[unit])
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
            ],
            "examples": ["30s", "200ms", "48h"],
        }
    ),
]


# Times as faxops reads them (pydantic's parsers), described by patterns rather than JSON Schema's
# ``format: time`` / ``date-time``: those are RFC 3339's, which demand seconds and an offset, so editors
# flagged the documented ``start: "09:00"`` and an offset-less ``start_at`` as errors.
_OFFSET = r"(Z|z|[+-]\d{2}(:?\d{2})?)?"
_CLOCK = r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
ClockTime = Annotated[
    time,
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_CLOCK}{_OFFSET}$", "examples": ["09:00", "17:30"]},
    ),
]
LocalDateTime = Annotated[
    datetime,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^\d{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([Tt ]{_CLOCK}{_OFFSET})?$",
            "description": "ISO 8601; without an offset it is read in schedule.timezone (else UTC).",
            "examples": ["2026-12-01T09:00", "2026-12-01T09:00:00+01:00"],
        }
    ),
]
