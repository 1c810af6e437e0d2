"""The pydantic models of a campaign manifest: who and what it sends, and the top-level ``Manifest``.

The schedule, retry and budget sections live in ``delivery``, the reporting targets in ``reporting``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import phonenumbers
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from faxops.fields import SecretRef, StrictModel
from faxops.manifest.delivery import Budget, RetrySpec, ScheduleSpec
from faxops.manifest.reporting import ReportTarget, StatusPush
from faxops.providers import REGISTRY, ProviderSettings
from faxops.providers.sandbox import SandboxSettings

SCHEMA_URL = "https://faxops.dev/schemas/campaign.schema.json"


def _phone_text(value: Any) -> Any:
    # Unquoted +4930123 or 0301234 are integers to YAML: the + or leading 0 is already gone.
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"write the number in quotes: YAML read it as the integer {value} and dropped its + or leading 0"
        )
    return value


PhoneText = Annotated[str, BeforeValidator(_phone_text), Field(min_length=1)]


def _check_region(value: str | None) -> str | None:
    if value is not None and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region code such as DE, FR, GB or US")
    return value.upper() if value else value


Region = Annotated[str | None, AfterValidator(_check_region)]


def _e164(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not an international number (+ and country code): {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{value!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class OptOut(StrictModel):
    """How a recipient stops further faxes: required on marketing faxes, printed on the first page or cover."""

    number: PhoneText = Field(description="Phone or fax number that takes opt-out requests, as printed.")
    method: str = Field(min_length=3, description="A free way to opt out, as printed (e.g. 'free fax-back form').")
    text: str | None = Field(
        default=None, description="Words to look for on the first page (default: 'opt out', 'unsubscribe' and similar)."
    )


class CampaignMeta(StrictModel):
    """Who and what the campaign is."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Short identifier: letters, digits, '.', '_' and '-'. Part of every client reference.",
    )
    description: str | None = None
    owner: str | None = None
    purpose: Literal["transactional", "marketing"] = Field(
        default="transactional",
        description="marketing: validate requires an opt-out block and a suppression list.",
    )
    opt_out: OptOut | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class SenderSpec(StrictModel):
    """How the fax identifies its sender."""

    csid: str | None = Field(
        default=None,
        max_length=20,
        description="Transmitting station id shown to the receiving machine (at most 20 characters).",
    )
    header: str | None = Field(default=None, description="Header line printed on every page.")
    name: str | None = None
    number: Annotated[str | None, AfterValidator(_e164)] = Field(
        default=None, description="Sender fax number in international form (+...)."
    )


class DocumentSpec(StrictModel):
    """One document to fax, in order."""

    path: str = Field(min_length=1, description="Path relative to the manifest.")
    name: str | None = Field(default=None, description="File name shown to the provider (default: the file's).")


def _document_shorthand(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class Columns(StrictModel):
    """Which columns of a list hold what."""

    number: str = Field(default="number", description="Column with the fax number.")
    name: str | None = Field(default=None, description="Column with the recipient's name.")
    fields: list[str] | dict[str, str] = Field(
        default_factory=list,
        description="Personalisation fields: a list of column names, or field name -> column name.",
    )

    def field_map(self) -> dict[str, str]:
        if isinstance(self.fields, dict):
            return dict(self.fields)
        return {c: c for c in self.fields}


class RecipientFile(StrictModel):
    """A recipient list: CSV, TSV or XLSX with a header row."""

    path: str = Field(min_length=1, description="Path relative to the manifest.")
    format: Literal["csv", "tsv", "xlsx"] | None = Field(default=None, description="Default: by extension.")
    columns: Columns = Field(default_factory=Columns)
    delimiter: str | None = Field(
        default=None, min_length=1, max_length=1, description="Default: sniffed from the header line."
    )
    encoding: str = "utf-8-sig"
    sheet: str | None = Field(default=None, description="XLSX sheet name (default: the first).")
    default_region: Region = Field(default=None, description="Region for national numbers in this file.")


class InlineRecipient(StrictModel):
    """A recipient written in the manifest itself."""

    number: PhoneText
    name: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)


class RecipientsSpec(StrictModel):
    """Where the recipients come from."""

    default_region: Region = Field(
        default=None, description="ISO region (DE, FR, US...) used to read national numbers."
    )
    inline: list[InlineRecipient] = Field(default_factory=list)
    files: list[RecipientFile] = Field(default_factory=list)
    max_invalid_percent: float = Field(
        default=20,
        ge=0,
        le=100,
        description="Refuse the campaign when more than this share of rows has no valid number (a wrong "
        "default_region or column would otherwise quietly drop most of a list).",
    )


class SuppressColumns(StrictModel):
    """Which column of a suppression list holds the number."""

    number: str = Field(description="Column with the fax number.")


class SuppressFile(StrictModel):
    """A list of numbers never to send to (CSV/TSV/XLSX with a header, or plain text: one per line)."""

    path: str = Field(min_length=1)
    format: Literal["csv", "tsv", "xlsx", "txt"] | None = Field(default=None, description="Default: by extension.")
    columns: SuppressColumns | None = Field(
        default=None, description="Column with the number (default: 'number', else the first)."
    )
    column: str | None = Field(default=None, description="Same as columns.number (older spelling).")
    delimiter: str | None = Field(
        default=None, min_length=1, max_length=1, description="Default: sniffed from the header line."
    )
    encoding: str = "utf-8-sig"
    sheet: str | None = Field(default=None, description="XLSX sheet name (default: the first).")
    reason: str | None = Field(default=None, description="Why these numbers are suppressed (shown in plans).")
    default_region: Region = None


def _suppress_shorthand(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


if TYPE_CHECKING:
    # The type checker sees the common base; code that needs one provider's settings narrows with isinstance.
    ProviderSpec = ProviderSettings
else:
    # Built from the registry so that adding a provider is one registry line.
    _settings = tuple(provider.settings_model for provider in REGISTRY.values())
    ProviderSpec = Annotated[
        _settings[0] if len(_settings) == 1 else __import__("typing").Union[_settings],
        Field(discriminator="type"),
    ]


class StateSpec(StrictModel):
    """Where the campaign's recorded state is kept (FAXOPS_STATE_URL in the environment overrides it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    backend: Literal["local", "postgres"] = Field(
        default="local",
        description="local: a lockfile, its journal and a lock file beside the manifest; postgres: tables in a "
        "PostgreSQL database shared by every machine that applies the campaign.",
    )
    url: SecretRef | None = Field(
        default=None,
        description="postgres: the database URL, e.g. ${env:FAXOPS_DATABASE_URL} (it carries a password).",
    )
    # not `schema`: that name is a method of pydantic's BaseModel
    db_schema: str = Field(
        default="faxops",
        alias="schema",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="postgres: the PostgreSQL schema faxops keeps its tables in.",
    )

    @model_validator(mode="after")
    def _url_with_postgres(self) -> StateSpec:
        if self.backend == "postgres" and self.url is None:
            raise ValueError("backend postgres needs url: (e.g. ${env:FAXOPS_DATABASE_URL})")
        if self.backend == "local" and self.url is not None:
            raise ValueError("url: is for backend postgres")
        return self


class Manifest(StrictModel):
    """A fax campaign: what to send, to whom, through which provider, when, and where to report."""

    version: Literal[1] = Field(default=1, description="Manifest format version.")
    campaign: CampaignMeta
    provider: ProviderSpec = Field(default_factory=SandboxSettings)
    sender: SenderSpec = Field(default_factory=SenderSpec)
    documents: list[
        Annotated[DocumentSpec, BeforeValidator(_document_shorthand, json_schema_input_type=str | DocumentSpec)]
    ] = Field(min_length=1, description="Documents to fax, in order: paths, or {path, name}.")
    recipients: RecipientsSpec
    suppress: list[
        Annotated[SuppressFile, BeforeValidator(_suppress_shorthand, json_schema_input_type=str | SuppressFile)]
    ] = Field(default_factory=list, description="Lists of numbers never to send to.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    budget: Budget = Field(default_factory=Budget)
    status_push: StatusPush | None = Field(default=None, description="Accept provider status pushes (webhook serve).")
    reporting: list[ReportTarget] = Field(default_factory=list)
    state: StateSpec = Field(default_factory=StateSpec, description="Where the recorded state is kept.")
