"""Recipient lists: stream inline entries and CSV/TSV/XLSX files, normalise numbers to E.164.

Rows are streamed, never loaded whole. Normalising a number with phonenumbers costs tens of
microseconds, which is most of a cold plan at a million rows, so results are cached on disk
(``.faxops/cache/`` beside the manifest, keyed by the phonenumbers version) and a large cold batch is
spread over all cores.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path

import phonenumbers

from faxops.chunks import Chunk, Row
from faxops.domain import Invalid, Recipient
from faxops.errors import InputError
from faxops.manifest import LoadedManifest, RecipientFile
from faxops.number_columns import NumberColumn, NumberColumns
from faxops.tables import MAX_NUMBER_TEXT, ListFile, file_format, iter_table_batches, number_text

_E164_RE = re.compile(r"^\+[1-9]\d{5,14}$")
_STRIP_RE = re.compile(r"[\s().\-/]")
_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# The phonenumbers version is part of the format: its metadata changes which numbers are valid, and a cache from an
# older release would keep yesterday's verdicts.
_CACHE_FORMAT = f"faxops-numbers 2 phonenumbers {phonenumbers.__version__}"
#: below this many uncached numbers a process pool costs more than it saves
_PARALLEL_THRESHOLD = 20_000
_CHUNK = 5_000


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
    # 00 is the international prefix in most of the world (Docoon's own examples write it): read it as +.
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
    # A national number means different subscribers in different regions: the region is part of its key, an
    # international one needs none.
    return raw if raw.startswith("+") else f"{region or ''}|{raw}"


class NumberCache:
    """Remembers ``raw -> E.164`` (or invalid) across runs, so a warm plan never calls phonenumbers."""

    def __init__(self, path: Path | None, columns: NumberColumns | None = None) -> None:
        self.path = path
        self.columns = columns  # each list file's numbers in file order, taken by position when unchanged
        self.dirty = False
        # Read on first use: a warm plan takes every number from the lists' columns (``number_columns``) and never
        # needs the million entries of a large cache.
        self._known: dict[str, str] | None = None

    @property
    def known(self) -> dict[str, str]:
        """key -> E.164, or "" for an invalid number."""
        if self._known is None:
            self._known = self._load(self.path) if self.path is not None else {}
        return self._known

    @staticmethod
    def _load(path: Path) -> dict[str, str]:
        # The file is the format line, the count, every key, then every value, one a line: loading a
        # million entries is then one split and one dict(zip(...)), no Python code per entry.
        try:
            parts = path.read_bytes().decode("utf-8").split("\n")
            if parts[0] != _CACHE_FORMAT:
                return {}  # another phonenumbers version (or format): its verdicts may differ
            count = int(parts[1])
            keys, values = parts[2 : 2 + count], parts[2 + count : 2 + 2 * count]
            if len(values) != count or parts[2 + 2 * count :] != [""]:
                return {}  # cut short: a cache is only a cache
            return dict(zip(keys, values, strict=True))
        except (OSError, UnicodeDecodeError, ValueError, IndexError):
            return {}

    def unload(self) -> None:
        """Free the entries once they are safely on disk (a million take ~200 MB); the next use reads
        the file again, which costs one split (a report reads the list twice and keeps the first pass)."""
        if self.path is not None and not self.dirty:
            self._known = None

    def ensure(self, rows: list[Row], workers: int) -> dict[str, str]:
        """Normalise what the cache does not know yet; return the cache (key -> E.164 or "")."""
        known = self.known
        missing = {}
        for row in rows:
            # _cache_key written out: this line runs once per row of a list that may hold millions.
            key = row.raw if row.raw[:1] == "+" else f"{row.region or ''}|{row.raw}"
            if key not in known:
                missing[key] = (row.raw, row.region)
        self._fill(missing, workers)
        return known

    def _fill(self, missing: dict[str, tuple[str, str | None]], workers: int) -> None:
        if not missing:
            return
        self.dirty = True
        args = list(missing.values())
        if workers > 1 and len(args) >= _PARALLEL_THRESHOLD:
            results = _parallel(args, workers)
        else:
            results = _normalise_chunk(args)
        for key, e164 in zip(missing, results, strict=True):
            # Invalid numbers are cached too (as ""): a list with many bad rows would otherwise parse them every plan.
            self.known[key] = e164 or ""

    def resolve_chunk(self, chunk: Chunk, workers: int) -> Chunk:
        """Set ``chunk.numbers``: one pass over its number column, phonenumbers only for what is new."""
        prefix = f"{chunk.region or ''}|"
        keys = [raw if raw[:1] == "+" else prefix + raw for raw in chunk.raws]
        get = self.known.get
        numbers = [get(key) for key in keys]
        if None in numbers:
            new = zip(keys, chunk.raws, numbers, strict=True)
            self._fill({key: (raw, chunk.region) for key, raw, e164 in new if e164 is None}, workers)
            known = self.known
            chunk.numbers = [known[key] for key in keys]
        else:
            chunk.numbers = numbers  # type: ignore[assignment]  # None is not in it
        return chunk

    def resolve(self, rows: list[Row], workers: int) -> list[str | None]:
        """E.164 for each row (None where invalid)."""
        known = self.ensure(rows, workers)
        return [known[_cache_key(r.raw, r.region)] or None for r in rows]

    def save(self) -> None:
        """Write the cache atomically when this run added to it (failures are ignored: it is a cache)."""
        if self.path is None or not self.dirty:
            return
        from faxops.state.files import atomic_write

        # A key with a line break (a quoted cell) would shift every line after it: not cached.
        known = {k: v for k, v in self.known.items() if "\n" not in k and "\r" not in k}

        def lines() -> Iterator[bytes]:
            yield f"{_CACHE_FORMAT}\n{len(known)}\n".encode()
            for part in (known.keys(), known.values()):
                items = list(part)
                for start in range(0, len(items), 65536):  # an empty part writes nothing
                    yield ("\n".join(items[start : start + 65536]) + "\n").encode()

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Atomic, so a plan killed mid-save leaves the old cache (the format line guards the rest); 0o600 because
            # the cache holds every recipient's number.
            atomic_write(self.path, lines(), mode=0o600)
            self.dirty = False
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


def _open_problem(loaded: LoadedManifest, loc: tuple[str | int, ...], path: Path) -> InputError | None:
    if not path.exists():
        return InputError(f"{path}: no such file", [loaded.problem(loc, f"file not found: {path}")])
    if not os.access(path, os.R_OK) or path.is_dir():
        return InputError(f"{path}: cannot read", [loaded.problem(loc, f"file is not readable: {path}")])
    return None


def iter_rows(loaded: LoadedManifest) -> Iterator[Row]:
    """Every recipient row of the manifest, inline entries first, then each file in order."""
    for item in iter_sources(loaded):
        if isinstance(item, Chunk):
            yield from item.rows()
        else:
            yield item


def iter_sources(loaded: LoadedManifest, chunk: int = 50_000) -> Iterator[Row | Chunk]:
    """The manifest's rows: inline entries one by one, then each file in chunks of ``chunk`` rows."""
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
        yield from _iter_file(loaded, i, rfile, rfile.default_region or spec.default_region, chunk)


def _iter_file(
    loaded: LoadedManifest, index: int, rfile: RecipientFile, region: str | None, chunk: int
) -> Iterator[Chunk]:
    path = loaded.resolve(rfile.path)
    loc: tuple[str | int, ...] = ("recipients", "files", index, "path")
    error = _open_problem(loaded, loc, path)
    if error:
        raise error
    fmt = file_format(path, rfile.format)
    batches = iter_table_batches(ListFile(path, fmt, rfile.encoding, rfile.delimiter, rfile.sheet), chunk)
    try:
        header = next(batches, None)
    except InputError as exc:
        if any(p.line is not None for p in exc.problems):
            raise
        # A whole-file problem (a zip bomb, a damaged workbook): point at the manifest line naming it.
        raise InputError(
            exc.message, [loaded.problem(loc, f"{path.name}: {p.message}") for p in exc.problems]
        ) from None
    if header is None:
        return
    columns = [c.strip() for c in header[1][0]]
    col_loc: tuple[str | int, ...] = ("recipients", "files", index, "columns")
    wanted = {"number": rfile.columns.number}
    if rfile.columns.name:
        wanted["name"] = rfile.columns.name
    field_map = rfile.columns.field_map()
    problems = []
    # Every missing column is reported before a row is read: a misspelt column would otherwise make every row invalid
    # (no number) or send faxes without the fields the document expects.
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
    take_number, strip = itemgetter(num_i), str.strip
    # Each pass below is one C-level loop over the batch (map, min, join, in): a Python loop per row here
    # cost more than the csv module's reading of the file.
    for lines, cells in batches:
        if min(map(len, cells)) < width:
            # Short rows (a spreadsheet drops trailing empty cells) are padded, not refused: an empty name or field is
            # allowed, and a missing number shows up as an invalid row.
            cells = [row if len(row) >= width else row + [""] * (width - len(row)) for row in cells]
        raws = list(map(strip, map(take_number, cells)))
        if max(map(len, raws)) > MAX_NUMBER_TEXT or _has_line_break("".join(raws)):
            for i in [i for i, raw in enumerate(raws) if len(raw) > MAX_NUMBER_TEXT or "\n" in raw or "\r" in raw][:1]:
                number_text(path, lines[i], num_i + 1, raws[i])  # raises: an unclosed quote or a shifted column
        if "" in raws:  # drop blank lines (a row with other cells but no number stays, as invalid)
            keep = [i for i, (raw, row) in enumerate(zip(raws, cells, strict=True)) if raw or any(row)]
            lines, cells, raws = [lines[i] for i in keep], [cells[i] for i in keep], [raws[i] for i in keep]
        if raws:
            yield Chunk(label, region, lines, cells, raws, name_i, field_names, field_idx, origin=(index, path))


def _has_line_break(text: str) -> bool:
    return "\n" in text or "\r" in text


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


def resolve_sources(
    sources: Iterable[Row | Chunk], cache: NumberCache, *, workers: int = 1
) -> Iterator[Recipient | Invalid | Chunk]:
    """Like ``resolve_rows``, keeping the chunks of files whole (their ``numbers`` set), in list order."""
    rows: list[Row] = []
    columns = cache.columns
    column: NumberColumn | None = None
    origin: tuple[int, Path] | None = None

    def resolve(chunk: Chunk) -> object:
        return cache.resolve_chunk(chunk, workers)

    for item in sources:
        if isinstance(item, Chunk):
            # Rows pending before a file's chunk go out first: the planner keeps the first occurrence of a
            # duplicate number, so the order of the manifest must survive the chunking.
            yield from resolve_rows(rows, cache, workers=workers)
            rows = []
            if columns is None or item.origin is None:
                yield cache.resolve_chunk(item, workers)
                continue
            if column is None or item.origin != origin:
                if column is not None:
                    columns.done(column)  # the previous file was read to its end
                origin, column = item.origin, columns.column(item.origin[1], item.region)
            column.resolve(item, resolve)
            yield item
        else:
            rows.append(item)
    yield from resolve_rows(rows, cache, workers=workers)
    if columns is not None:
        if column is not None:
            columns.done(column)
        columns.save()


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
