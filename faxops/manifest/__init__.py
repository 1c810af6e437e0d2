"""The campaign manifest: pydantic models, and loading YAML with every error located by line.

- ``models``, ``delivery``, ``reporting``: the sections of a manifest (``faxops schema`` is generated from them);
- ``located``: YAML read with positions, and pydantic errors turned into file:line: field: message;
- ``confinement``: the files a manifest names must lie inside its folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from faxops.errors import InputError
from faxops.manifest.confinement import ALLOW_OUTSIDE_ENV, allowed_roots, iter_paths, outside_problems
from faxops.manifest.delivery import Budget, Rate, RetryClass, RetrySpec, ScheduleSpec, SendWindow
from faxops.manifest.located import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_VALUES,
    LoadedManifest,
    Position,
    format_loc,
    locate,
    pydantic_problems,
    read_yaml,
)
from faxops.manifest.models import (
    SCHEMA_URL,
    CampaignMeta,
    Columns,
    DocumentSpec,
    InlineRecipient,
    Manifest,
    OptOut,
    ProviderSpec,
    RecipientFile,
    RecipientsSpec,
    SenderSpec,
    StateSpec,
    SuppressColumns,
    SuppressFile,
)
from faxops.manifest.reporting import (
    EmailReport,
    FileReport,
    ReceiptReport,
    ReportTarget,
    SmtpSpec,
    StatusPush,
    WebhookReport,
)

__all__ = [
    "ALLOW_OUTSIDE_ENV",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_VALUES",
    "SCHEMA_URL",
    "Budget",
    "CampaignMeta",
    "Columns",
    "DocumentSpec",
    "EmailReport",
    "FileReport",
    "InlineRecipient",
    "LoadedManifest",
    "Manifest",
    "OptOut",
    "Position",
    "ProviderSpec",
    "Rate",
    "ReceiptReport",
    "RecipientFile",
    "RecipientsSpec",
    "ReportTarget",
    "RetryClass",
    "RetrySpec",
    "ScheduleSpec",
    "SendWindow",
    "SenderSpec",
    "SmtpSpec",
    "StateSpec",
    "StatusPush",
    "SuppressColumns",
    "SuppressFile",
    "WebhookReport",
    "allowed_roots",
    "campaign_schema",
    "format_loc",
    "iter_paths",
    "load_manifest",
    "locate",
]


def load_manifest(path: Path, *, allow_outside: Sequence[Path] = ()) -> LoadedManifest:
    """Read and validate a manifest; raise ``InputError`` listing every problem with its position.

    Files it names must lie inside its folder or under one of ``allow_outside`` (see ``allowed_roots``).
    """
    raw, data, positions = read_yaml(path)
    try:
        model = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(path, exc, positions)
        raise InputError(f"{path}: {len(problems)} problem(s) in the manifest", problems) from None
    loaded = LoadedManifest(path=path, model=model, positions=positions, digest=hashlib.sha256(raw).hexdigest())
    outside = outside_problems(loaded, allowed_roots(allow_outside))
    if outside:
        raise InputError(f"{path}: {len(outside)} file(s) outside the campaign folder", outside)
    return loaded


def campaign_schema() -> dict[str, Any]:
    """The JSON schema of a manifest, as committed in ``schemas/campaign.schema.json``."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL
    schema["title"] = "faxops campaign manifest"
    return schema
