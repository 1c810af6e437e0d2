"""Recipient lists: stream inline entries and CSV/TSV/XLSX files, normalise numbers to E.164.

Rows are streamed, never loaded whole. Normalising a number with phonenumbers costs tens of
microseconds, which is most of a cold plan at a million rows, so results are cached on disk
(``.faxops/cache/`` beside the manifest, keyed by the phonenumbers version) and a large cold batch is
spread over all cores.
"""

from __future__ import annotations

import csv
import getpass
import io
import multiprocessing
import os
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from faxops.domain import Invalid, Recipient
from faxops.errors import InputError, Problem
from faxops.manifest import LoadedManifest, RecipientFile, SuppressFile
from faxops.state.journal import now_iso

csv.field_size_limit(1 << 20)

_E164_RE = re.compile(r"^\+[1-9]\d{5,14}$")
_STRIP_RE = re.compile(r"[\s().\-/]")
_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_CACHE_FORMAT = f"faxops-numbers 1 phonenumbers {phonenumbers.__version__}"
#: below this many uncached numbers a process pool costs more than it saves
_PARALLEL_THRESHOLD = 20_000
_CHUNK = 5_000


@dataclass(slots=True)  # not frozen: built per row, and frozen dataclasses are 4x slower to build
class Row:
    """A recipient as written in a list, before its number is normalised."""

    raw: str
    region: str | None
    name: str | None
    fields: dict[str, str] | None
    source: str


# --- normalisation ---------------------------------------------------------------------------------


def _fast_e164(text: str) -> str | None:
    """Validate an already-international number without phonenumbers' full parser.

    ``parse`` is two thirds of the cost and does nothing useful for ``+<digits>``; country codes are
    prefix-free, so the first 1-3 digit prefix that is a country code is the country code. Anything
    this cannot confirm falls back to the full parser (tests check both agree).
    """
    for length in (1, 2, 3):
        code = int(text[1 : 1 + length])
        if code in _COUNTRY_CODES:
            national = text[1 + length :]
            if not national or national[0] == "0":
                return None  # leading zeros need the full parser's rules
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
            return text if phonenumbers.is_valid_number(number) else None
    return None


def normalise(raw: str, region: str | None) -> tuple[str | None, str | None]:
    """``(e164, None)`` for a valid number, ``(None, reason)`` otherwise."""
    text = _STRIP_RE.sub("", raw)
    if not text:
        return None, "empty number"
    if text.startswith("00"):
        text = "+" + text[2:]
    if _E164_RE.match(text):
        fast = _fast_e164(text)
        if fast is not None:
            return fast, None
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and region is None:
            return None, "national number without a default_region (or write it as +<country code>...)"
        return None, f"not a phone number ({exc._msg})"
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_number(parsed) or f"+{parsed.country_code}"
        return None, f"not a valid number for {where}"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def _normalise_chunk(keys: list[tuple[str, str | None]]) -> list[str | None]:
    return [normalise(raw, region)[0] for raw, region in keys]


def _cache_key(raw: str, region: str | None) -> str:
    return raw if raw.startswith("+") else f"{region or ''}|{raw}"


class NumberCache:
    """Remembers ``raw -> E.164`` (or invalid) across runs, so a warm plan never calls phonenumbers."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: dict[str, str] = {}  # key -> E.164, or "" for invalid
        self.dirty = False
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            with path.open(encoding="utf-8") as fh:
                if fh.readline().rstrip("\n") != _CACHE_FORMAT:
                    return  # another phonenumbers version: its verdicts may differ
                known = self.known
                for line in fh:
                    key, _, value = line.rstrip("\n").rpartition("\t")
                    known[key] = value
        except (OSError, UnicodeDecodeError, ValueError):
            self.known = {}  # a cache is only a cache

    def ensure(self, rows: list[Row], workers: int) -> dict[str, str]:
        """Normalise what the cache does not know yet; return the cache (key -> E.164 or "")."""
        known = self.known
        missing = {}
        for row in rows:
            key = row.raw if row.raw[:1] == "+" else f"{row.region or ''}|{row.raw}"
            if key not in known:
                missing[key] = (row.raw, row.region)
        if missing:
            self.dirty = True
            args = list(missing.values())
            if workers > 1 and len(args) >= _PARALLEL_THRESHOLD:
                results = _parallel(args, workers)
            else:
                results = _normalise_chunk(args)
            for key, e164 in zip(missing, results, strict=True):
                known[key] = e164 or ""
        return known

    def resolve(self, rows: list[Row], workers: int) -> list[str | None]:
        """E.164 for each row (None where invalid)."""
        known = self.ensure(rows, workers)
        return [known[_cache_key(r.raw, r.region)] or None for r in rows]

    def save(self) -> None:
        """Write the cache atomically when this run added to it (failures are ignored: it is a cache)."""
        if self.path is None or not self.dirty:
            return
        from faxops.state.files import atomic_write

        def lines() -> Iterator[bytes]:
            yield (_CACHE_FORMAT + "\n").encode()
            for key, value in self.known.items():
                yield f"{key}\t{value}\n".encode()

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lines(), mode=0o600)
        except OSError:
            pass


def _parallel(args: list[tuple[str, str | None]], workers: int) -> list[str | None]:
    chunks = [args[i : i + _CHUNK] for i in range(0, len(args), _CHUNK)]
    # forkserver: forking a process that may hold threads (progress bars, httpx) is unsafe.
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        results: list[str | None] = []
        for part in pool.imap(_normalise_chunk, chunks):
            results.extend(part)
        return results


# --- reading lists ---------------------------------------------------------------------------------


def _file_format(spec: RecipientFile | SuppressFile, path: Path) -> str:
    fmt = getattr(spec, "format", None)
    if fmt:
        return str(fmt)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".txt":
        return "txt"
    return "csv"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _iter_table(
    path: Path, fmt: str, encoding: str, delimiter: str | None, sheet: str | None
) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each row of a CSV/TSV/XLSX file, header first."""
    if fmt == "xlsx":
        from openpyxl import load_workbook

        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises a zoo of exceptions on damaged files
            raise InputError(f"{path}: cannot read the workbook: {exc}") from None
        try:
            if sheet is not None and sheet not in book.sheetnames:
                raise InputError(f"{path}: no sheet named {sheet!r} (sheets: {', '.join(book.sheetnames)})")
            ws = book[sheet] if sheet else book.worksheets[0]
            for index, values in enumerate(ws.iter_rows(values_only=True), start=1):
                yield index, [_cell(v) for v in values]
        finally:
            book.close()
        return
    sep = delimiter or ("\t" if fmt == "tsv" else ",")
    try:
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.reader(fh, delimiter=sep)
            line = 1
            for cells in reader:
                yield line, cells
                line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not {encoding} text (byte {exc.start}); set `encoding:` for this list") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None


def _open_problem(loaded: LoadedManifest, loc: tuple[str | int, ...], path: Path) -> InputError | None:
    if not path.exists():
        return InputError(f"{path}: no such file", [loaded.problem(loc, f"file not found: {path}")])
    if not os.access(path, os.R_OK) or path.is_dir():
        return InputError(f"{path}: cannot read", [loaded.problem(loc, f"file is not readable: {path}")])
    return None


def iter_rows(loaded: LoadedManifest) -> Iterator[Row]:
    """Every recipient row of the manifest, inline entries first, then each file in order."""
    spec = loaded.model.recipients
    for i, entry in enumerate(spec.inline):
        line, _ = loaded.positions.get(("recipients", "inline", i), (None, None))
        yield Row(
            entry.number,
            spec.default_region,
            entry.name,
            dict(entry.fields) or None,
            f"{loaded.path.name}:{line}",
        )
    for i, rfile in enumerate(spec.files):
        yield from _iter_file(loaded, i, rfile, rfile.default_region or spec.default_region)


def _iter_file(loaded: LoadedManifest, index: int, rfile: RecipientFile, region: str | None) -> Iterator[Row]:
    path = loaded.resolve(rfile.path)
    loc: tuple[str | int, ...] = ("recipients", "files", index, "path")
    error = _open_problem(loaded, loc, path)
    if error:
        raise error
    fmt = _file_format(rfile, path)
    rows = _iter_table(path, fmt, rfile.encoding, rfile.delimiter, rfile.sheet)
    header = next(rows, None)
    if header is None:
        return
    columns = [c.strip() for c in header[1]]
    col_loc: tuple[str | int, ...] = ("recipients", "files", index, "columns")
    wanted = {"number": rfile.columns.number}
    if rfile.columns.name:
        wanted["name"] = rfile.columns.name
    field_map = rfile.columns.field_map()
    problems = []
    for role, column in [*wanted.items(), *((f"fields.{k}", v) for k, v in field_map.items())]:
        if column not in columns:
            problems.append(
                loaded.problem(
                    (*col_loc, role.split(".")[0]),
                    f"{path.name} has no column {column!r} (its columns: {', '.join(columns) or 'none'})",
                )
            )
    if problems:
        raise InputError(f"{path}: columns missing", problems)
    num_i = columns.index(wanted["number"])
    name_i = columns.index(wanted["name"]) if "name" in wanted else None
    field_names = list(field_map)
    field_idx = [columns.index(v) for v in field_map.values()]
    width = max([num_i, name_i or 0, *field_idx]) + 1
    label = path.name + ":"
    for line, cells in rows:
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        raw = cells[num_i].strip()
        if not raw and not any(cells):
            continue  # blank line
        name = cells[name_i].strip() or None if name_i is not None else None
        fields = dict(zip(field_names, [cells[j] for j in field_idx], strict=True)) if field_idx else None
        yield Row(raw, region, name, fields, label + str(line))


def resolve_rows(
    rows: Iterable[Row], cache: NumberCache, *, workers: int = 1, chunk: int = 50_000
) -> Iterator[Recipient | Invalid]:
    """Normalise rows in chunks: one cache/pool round trip per chunk, memory bounded by the chunk."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            yield from _resolve_batch(batch, cache, workers)
            batch = []
    if batch:
        yield from _resolve_batch(batch, cache, workers)


def _resolve_batch(batch: list[Row], cache: NumberCache, workers: int) -> Iterator[Recipient | Invalid]:
    known = cache.ensure(batch, workers)
    for row in batch:
        raw = row.raw
        e164 = known[raw if raw[:1] == "+" else f"{row.region or ''}|{raw}"]
        if e164:
            yield Recipient(e164, row.name, row.fields, row.source)
        else:
            _, reason = normalise(raw, row.region)
            yield Invalid(raw, row.source, reason or "not a valid number")


def load_suppressions(
    loaded: LoadedManifest, extra: Iterable[tuple[Path, str]] = ()
) -> tuple[dict[str, str], list[Problem]]:
    """Numbers never to send to, mapped to the reason shown in plans; plus warnings for bad rows."""
    suppressed: dict[str, str] = {}
    warnings: list[Problem] = []
    default_region = loaded.model.recipients.default_region
    for i, sfile in enumerate(loaded.model.suppress):
        path = loaded.resolve(sfile.path)
        error = _open_problem(loaded, ("suppress", i, "path"), path)
        if error:
            raise error
        reason = sfile.reason or f"suppressed by {path.name}"
        region = sfile.default_region or default_region
        for raw, source in _suppress_rows(loaded, i, sfile, path):
            e164, why = normalise(raw, region)
            if e164 is None:
                warnings.append(Problem(f"suppression entry {raw!r} ignored: {why}", file=source, severity="warning"))
            else:
                suppressed.setdefault(e164, reason)
    for path, reason in extra:
        if not path.exists():
            continue
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                for line_no, row in enumerate(csv.reader(fh), start=1):
                    raw = row[0].strip() if row else ""
                    if not raw or raw.startswith("#") or raw == "number":
                        continue
                    e164, why = normalise(raw, default_region)
                    if e164 is None:
                        warnings.append(
                            Problem(f"entry {raw!r} ignored: {why}", file=f"{path}:{line_no}", severity="warning")
                        )
                        continue
                    said = row[1].strip() if len(row) > 1 and row[1].strip() else None
                    suppressed.setdefault(e164, f"{reason}: {said}" if said else f"{reason} ({path.name}:{line_no})")
        except OSError as exc:
            raise InputError(f"{path}: cannot read the suppression list: {exc.strerror}") from None
    return suppressed, warnings


GLOBAL_LIST_ENV = "FAXOPS_SUPPRESSION_LIST"


def global_suppression_list() -> Path | None:
    """The organisation-wide do-not-fax list: $FAXOPS_SUPPRESSION_LIST, else ~/.config/faxops/suppress.csv."""
    named = os.environ.get(GLOBAL_LIST_ENV)
    if named:
        return Path(named).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "faxops" / "suppress.csv"


def add_suppression(path: Path, text: str, reason: str, *, region: str | None = None) -> str:
    """Append a number to a suppression list (CSV: number, reason, added_at, added_by), durably."""
    e164, why = normalise(text, region.upper() if region else None)
    if e164 is None:
        raise InputError(
            f"{text!r} is not a valid number: {why}", hint="write it as +<country code>... or pass --region"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if new:
        writer.writerow(["number", "reason", "added_at", "added_by"])
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    writer.writerow([e164, reason.replace("\n", " "), now_iso(), who])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, out.getvalue().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return e164


def _suppress_rows(loaded: LoadedManifest, index: int, sfile: SuppressFile, path: Path) -> Iterator[tuple[str, str]]:
    fmt = _file_format(sfile, path)
    if fmt == "txt":
        with path.open(encoding="utf-8-sig") as fh:
            for line_no, text in enumerate(fh, start=1):
                text = text.strip()
                if text and not text.startswith("#"):
                    yield text, f"{path}:{line_no}"
        return
    rows = _iter_table(path, fmt, "utf-8-sig", None, None)
    header = next(rows, None)
    if header is None:
        return
    columns = [c.strip() for c in header[1]]
    column = sfile.column
    if column is None:
        column = "number" if "number" in columns else (columns[0] if columns else "")
    if column not in columns:
        raise InputError(
            f"{path}: no column {column!r}",
            [
                loaded.problem(
                    ("suppress", index, "column"),
                    f"{path.name} has no column {column!r} (its columns: {', '.join(columns)})",
                )
            ],
        )
    idx = columns.index(column)
    for line, cells in rows:
        if idx < len(cells) and cells[idx].strip():
            yield cells[idx].strip(), f"{path}:{line}"
