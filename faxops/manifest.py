"""The campaign manifest: pydantic models, and loading YAML with every error located by line.

The YAML is read with ruamel.yaml's round-trip loader, which keeps the line and column of every key
and item. It is safe in the sense that matters here: it builds only plain mappings, sequences and
scalars, never arbitrary Python objects. Values are converted to plain Python before validation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import phonenumbers
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from faxops.errors import InputError, Problem
from faxops.fields import ClockTime, Duration, LocalDateTime, SecretRef, StrictModel
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


_DAY = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SendWindow(StrictModel):
    """Days and hours (in the recipient's local time) when sending is allowed."""

    days: list[_DAY] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])  # type: ignore[arg-type]
    start: ClockTime = time(9, 0)
    end: ClockTime = time(17, 0)

    @model_validator(mode="after")
    def _order(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Rate(StrictModel):
    per_minute: int | None = Field(default=None, ge=1)
    per_hour: int | None = Field(default=None, ge=1)


class ScheduleSpec(StrictModel):
    """When and how fast to send."""

    start_at: LocalDateTime | None = None
    expire_at: LocalDateTime | Duration | None = Field(
        default=None, description="A time, or a duration after start_at such as 48h."
    )
    timezone: str | None = Field(default=None, description="Fix one IANA time zone instead of the recipient's.")
    windows: list[SendWindow] = Field(default_factory=list)
    holidays: list[date] = Field(default_factory=list)
    rate: Rate | None = None
    concurrency: int = Field(default=4, ge=1, le=64, description="Submissions in flight at once.")
    batch_size: int | None = Field(default=None, ge=1, description="Recipients per provider job (capped by the API).")
    provider_side: bool = Field(default=False, description="Let the provider schedule where its API can.")

    @model_validator(mode="after")
    def _expiry(self) -> ScheduleSpec:
        if isinstance(self.expire_at, timedelta) and self.start_at is None:
            raise ValueError("expire_at as a duration counts from start_at: set start_at, or give expire_at a time")
        if isinstance(self.expire_at, datetime) and self.start_at is not None:
            start, end = self.start_at, self.expire_at
            if (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
                raise ValueError("expire_at must be after start_at")
        return self

    # A field validator, not a model validator: its error is located on the `timezone:` line itself.
    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from exc
        return value


class RetryClass(StrictModel):
    """The retry rule of one failure class."""

    max_attempts: int | None = Field(default=None, ge=1, le=20, description="Attempts in all, the first included.")
    wait: Duration | None = Field(default=None, description="Least time after the failure before the next attempt.")


class RetrySpec(StrictModel):
    """How often, and how soon, a failed recipient may be tried again."""

    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts per recipient, the first included.")
    min_gap: Duration = Field(
        default=timedelta(minutes=5), description="Least time between two attempts to one number, whatever failed."
    )
    classes: dict[
        Literal["busy", "no_answer", "not_fax", "invalid_number", "blocked", "document", "account", "unknown"],
        RetryClass,
    ] = Field(
        default_factory=dict,
        description=(
            "Per failure class. Defaults: busy wait 10m; no_answer wait 30m; not_fax max_attempts 2, wait 1h; "
            "invalid_number and blocked max_attempts 1 (never retried); document and account stop the run; "
            "unknown wait 30m."
        ),
    )


class Budget(StrictModel):
    """Cost estimate and guards: apply refuses a run that would exceed one."""

    currency: str = Field(default="EUR", min_length=3, max_length=3)
    per_page: dict[str, float] = Field(
        default_factory=dict,
        description="Price per page by region code (DE, FR, US...), '*' for every other region.",
    )
    max_cost: float | None = Field(default=None, ge=0, description="Most this run may cost (estimated).")
    max_sends: int | None = Field(default=None, ge=0, description="Most faxes one run may submit.")
    max_pages: int | None = Field(default=None, ge=0, description="Most pages one run may submit.")

    @model_validator(mode="after")
    def _regions(self) -> Budget:
        for key in self.per_page:
            if key != "*" and key.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"per_page: {key!r} is not a region code such as DE, FR, GB or US, or '*'")
        return self


class StatusPush(StrictModel):
    """How `faxops webhook serve` authenticates status pushes from the provider."""

    secret: SecretRef = Field(description="Shared secret: Basic auth password, Bearer token, or ?token= in the URL.")
    username: str = Field(default="faxops", description="User name for Basic auth.")


When = Annotated[
    Literal["final", "always", "manual"],
    Field(
        description="final: when every recipient has a final status; always: after every apply/refresh; "
        "manual: only `faxops report`.",
    ),
]


class FileReport(StrictModel):
    """A report written to a file beside the manifest."""

    type: Literal["file"]
    path: str = Field(min_length=1, description="Relative to the manifest.")
    format: Literal["json", "csv", "html"] = "json"
    mask_numbers: bool = Field(default=False, description="Show +4930****5678 instead of the whole number.")
    when: When = "final"


class WebhookReport(StrictModel):
    """A JSON POST of the summary (and optionally every recipient) to a URL."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretRef | None = Field(default=None, description="HMAC-SHA256 key: X-Faxops-Signature: sha256=<hex>.")
    include_recipients: bool = False
    mask_numbers: bool = True
    retries: int = Field(default=3, ge=0, le=10)
    timeout: Duration = timedelta(seconds=10)
    when: When = "final"


class SmtpSpec(StrictModel):
    """The SMTP server that sends e-mail reports."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="Upgrade to TLS (the server's certificate is verified).")
    ca_file: str | None = Field(
        default=None, description="PEM file of the CA that signed the server's certificate (a private relay)."
    )
    username: SecretRef | None = None
    password: SecretRef | None = None


class EmailReport(StrictModel):
    """A summary by e-mail with the CSV report attached."""

    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from")
    subject: str | None = None
    smtp: SmtpSpec
    mask_numbers: bool = True
    when: When = "final"


class ReceiptReport(StrictModel):
    """A receipt of every apply (counts, plan digest, who, where, CI run; numbers masked), to commit or attach."""

    type: Literal["receipt"]
    path: str = Field(
        default="receipts/{campaign}-{serial}.json",
        min_length=1,
        description="Relative to the manifest; {campaign} and {serial} (the state's serial after the apply) "
        "are filled in.",
    )
    when: Literal["apply"] = Field(default="apply", description="Written after every apply that ran.")


ReportTarget = Annotated[FileReport | WebhookReport | EmailReport | ReceiptReport, Field(discriminator="type")]

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
    """Where the campaign's recorded state is kept."""

    backend: Literal["local"] = Field(
        default="local", description="local: a lockfile, its journal and a lock file beside the manifest."
    )


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


# --- loading -----------------------------------------------------------------------------------------

Position = tuple[int, int]  # 1-based line, column


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest with where it came from."""

    path: Path
    model: Manifest
    positions: dict[tuple[str | int, ...], Position]
    digest: str  # sha256 of the manifest file

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.model.campaign.name

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).expanduser()

    def problem(self, loc: tuple[str | int, ...], message: str, severity: str = "error") -> Problem:
        line, col = locate(self.positions, loc)
        return Problem(message, file=self.path, line=line, column=col, field=format_loc(loc) or None, severity=severity)


def format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def locate(
    positions: dict[tuple[str | int, ...], Position], loc: tuple[str | int, ...]
) -> Position | tuple[None, None]:
    for end in range(len(loc), -1, -1):
        if loc[:end] in positions:
            return positions[loc[:end]]
    return (None, None)


#: Most values a manifest may expand to. A real one has hundreds; a YAML alias bomb ("billion laughs":
#: each anchor a list of aliases of the one before) expands a few KB into billions, and would hang here.
MAX_MANIFEST_VALUES = 100_000
#: Largest manifest file read. Manifests are hand-written; lists of recipients belong in files.
MAX_MANIFEST_BYTES = 1 << 20


class _Budget:
    """Counts the values built from the YAML, so that aliases cannot make the copy explode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.left = MAX_MANIFEST_VALUES

    def spend(self, where: tuple[str | int, ...], positions: dict[tuple[str | int, ...], Position]) -> None:
        self.left -= 1
        if self.left < 0:
            # Under aliases, inner positions are the anchor's; name the top-level key that expands.
            where = where[:1]
            line, col = locate(positions, where)
            raise InputError(
                f"{self.path}: the manifest expands to more than {MAX_MANIFEST_VALUES:,} values",
                [
                    Problem(
                        f"more than {MAX_MANIFEST_VALUES:,} values once YAML aliases (*name) are expanded; "
                        "refusing what looks like an alias bomb",
                        file=self.path,
                        line=line,
                        column=col,
                        field=format_loc(where) or None,
                    )
                ],
            )


def _plain(
    node: Any, path: tuple[str | int, ...], positions: dict[tuple[str | int, ...], Position], budget: _Budget
) -> Any:
    """Convert ruamel's round-trip nodes to plain Python, recording the position of every path."""
    budget.spend(path, positions)
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            sub = (*path, str(key))
            try:
                line, col = node.lc.key(key)
                positions[sub] = (line + 1, col + 1)
            except (KeyError, TypeError):
                pass
            out[str(key)] = _plain(node[key], sub, positions, budget)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            sub = (*path, i)
            try:
                line, col = node.lc.item(i)
                positions[sub] = (line + 1, col + 1)
            except (KeyError, TypeError, IndexError):
                pass
            items.append(_plain(item, sub, positions, budget))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime):
        # ruamel's TimeStamp subclass carries YAML bookkeeping; keep a plain aware/naive datetime.
        return datetime(
            node.year,
            node.month,
            node.day,
            node.hour,
            node.minute,
            node.second,
            node.microsecond,
            tzinfo=node.tzinfo,
        )
    return node


_PYDANTIC_MESSAGES = {
    "extra_forbidden": "unknown key (check the spelling; see `faxops schema`)",
    "missing": "required key is missing",
}


def _pydantic_problems(
    path: Path, exc: ValidationError, positions: dict[tuple[str | int, ...], Position]
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        # Unions add the tag (e.g. 'sandbox') or a validator name to the location; drop it for the user.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _is_union_tag(err["loc"], p)))
        message = _PYDANTIC_MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "union_tag_invalid" and "ctx" in err:
            # The tag's own key (provider.type, reporting[0].type), not the section above it.
            loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
            message = f"unknown type {err['ctx']['tag']!r} (one of {err['ctx']['expected_tags']})"
        if err["type"] == "value_error":
            message = str(err["ctx"].get("error", message)) if "ctx" in err else message
        line, col = locate(positions, loc)
        problems.append(Problem(message, file=path, line=line, column=col, field=format_loc(loc) or None))
    return problems


def _is_union_tag(full_loc: tuple[Any, ...], part: str) -> bool:
    idx = full_loc.index(part)
    parent = full_loc[idx - 1] if idx else None
    if parent == "provider" and part in REGISTRY:
        return True
    if isinstance(parent, int) and "reporting" in full_loc[:idx] and part in ("file", "webhook", "email"):
        return True
    return bool(part.startswith(("function-", "union[", "list[")) or "[" in part)


_yaml = YAML(typ="rt")
_yaml.allow_duplicate_keys = False


ALLOW_OUTSIDE_ENV = "FAXOPS_ALLOW_OUTSIDE"


def allowed_roots(flags: Sequence[Path] = ()) -> list[Path]:
    """Folders outside a campaign that its manifest may name: ``--allow-outside`` plus $FAXOPS_ALLOW_OUTSIDE.

    Both come from the person running faxops, never from the manifest, which may come from a pull request.
    """
    named = [Path(p) for p in os.environ.get(ALLOW_OUTSIDE_ENV, "").split(os.pathsep) if p]
    return [*flags, *named]


def _inside(real: str, roots: Sequence[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _outside_problems(loaded: LoadedManifest, allow_outside: Sequence[Path]) -> list[Problem]:
    """Every file the manifest names that is not inside its folder (after symlinks) nor explicitly allowed.

    A manifest in Git is input from whoever can open a pull request: without this, ``documents:
    [/etc/passwd]`` would fax a file of the CI runner, and a report path could overwrite one.
    """
    base = os.path.realpath(loaded.base_dir)
    roots = [base, *(os.path.realpath(p.expanduser()) for p in allow_outside)]
    named = [*iter_paths(loaded)]
    named += [
        (("reporting", i, "path"), loaded.resolve(t.path))
        for i, t in enumerate(loaded.model.reporting)
        if isinstance(t, FileReport)
    ]
    problems = []
    for loc, target in named:
        # realpath (not Path.resolve) never raises on a symlink loop; the loop is reported when opened.
        real = os.path.realpath(target)
        if not _inside(real, roots):
            shown = f"{target} (a link to {real})" if real != os.path.abspath(target) else real
            problems.append(
                loaded.problem(
                    loc,
                    f"{shown} is outside the campaign folder {base}; a manifest may only name files inside its "
                    f"folder unless you allow it: --allow-outside {os.path.dirname(real)}",
                )
            )
    return problems


def load_manifest(path: Path, *, allow_outside: Sequence[Path] = ()) -> LoadedManifest:
    """Read and validate a manifest; raise ``InputError`` listing every problem with its position.

    Files it names must lie inside its folder or under one of ``allow_outside`` (see ``allowed_roots``).
    """
    try:
        with path.open("rb") as fh:
            # Read one byte past the limit instead of stat(): the file may be a pipe or still growing.
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InputError(
            f"{path}: the manifest is larger than {MAX_MANIFEST_BYTES // 1024} KB",
            [
                Problem(
                    f"over {MAX_MANIFEST_BYTES // 1024} KB: a manifest names its lists and documents, it does not "
                    "hold them (put recipients in a CSV/XLSX file under recipients.files)",
                    file=path,
                    line=1,
                )
            ],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the manifest is not UTF-8 text (byte {exc.start})") from None
    try:
        document = _yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or exc.context or "malformed YAML"
        raise InputError(
            "the manifest is not valid YAML",
            [Problem(f"malformed YAML: {what}", file=path, line=line, column=col)],
        ) from None
    except YAMLError as exc:
        raise InputError("the manifest is not valid YAML", [Problem(f"malformed YAML: {exc}", file=path)]) from None
    positions: dict[tuple[str | int, ...], Position] = {}
    data = _plain(document, (), positions, _Budget(path))
    if not isinstance(data, dict):
        raise InputError(
            "the manifest must be a mapping",
            [Problem("expected keys such as campaign:, documents:, recipients:", file=path, line=1, column=1)],
        )
    try:
        model = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(path, exc, positions)
        raise InputError(f"{path}: {len(problems)} problem(s) in the manifest", problems) from None
    loaded = LoadedManifest(path=path, model=model, positions=positions, digest=hashlib.sha256(raw).hexdigest())
    outside = _outside_problems(loaded, allowed_roots(allow_outside))
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


def iter_paths(loaded: LoadedManifest) -> Iterator[tuple[tuple[str | int, ...], Path]]:
    """Every input file the manifest names, with the manifest location that names it."""
    model = loaded.model
    for i, doc in enumerate(model.documents):
        yield ("documents", i, "path"), loaded.resolve(doc.path)
    for i, rfile in enumerate(model.recipients.files):
        yield ("recipients", "files", i, "path"), loaded.resolve(rfile.path)
    for i, sfile in enumerate(model.suppress):
        yield ("suppress", i, "path"), loaded.resolve(sfile.path)
