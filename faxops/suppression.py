"""Do-not-fax lists: read them (the same reader as recipient lists), and add to them in their own format.

A suppression list is the one input where a silently skipped line costs the most: a number someone
asked never to be faxed again. So an entry that cannot be read is an error that stops the campaign,
never a warning; and ``suppress add`` reads its own line back before it says "Added".
"""

from __future__ import annotations

import csv
import getpass
import io
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from faxops.clock import now_iso
from faxops.errors import InputError, Problem
from faxops.manifest import LoadedManifest, SuppressFile
from faxops.recipients import normalise
from faxops.state.files import atomic_write
from faxops.tables import ListFile, check_archive, file_format, iter_table, number_text

GLOBAL_LIST_ENV = "FAXOPS_SUPPRESSION_LIST"
#: columns of a list ``suppress add`` creates
NEW_LIST_COLUMNS = ("number", "reason", "added_at", "added_by")
#: unreadable entries listed in one error (the count says how many more)
_SHOWN = 50


def global_suppression_list() -> Path | None:
    """The organisation-wide do-not-fax list: $FAXOPS_SUPPRESSION_LIST, else ~/.config/faxops/suppress.csv."""
    named = os.environ.get(GLOBAL_LIST_ENV)
    if named:
        return Path(named).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "faxops" / "suppress.csv"


class _NoColumn(Exception):
    def __init__(self, column: str, columns: list[str]) -> None:
        super().__init__(column)
        self.column = column
        self.columns = columns


def iter_entries(source: ListFile, column: str | None = None) -> Iterator[tuple[int, str, str | None]]:
    """``(line, number as written, reason cell or None)`` for each entry of a suppression list.

    Tables have a header: the number is in ``column``, else in ``number``, else in the first column;
    a ``reason`` column, when there is one, is passed along. Blank cells and ``#`` comments are skipped.
    """
    rows = iter_table(source)
    header = next(rows, None)
    if header is None:
        return
    columns = [c.strip() for c in header[1]]
    wanted = column or ("number" if "number" in columns else (columns[0] if columns else "number"))
    if wanted not in columns:
        raise _NoColumn(wanted, columns)
    index = columns.index(wanted)
    why = columns.index("reason") if "reason" in columns else None
    for line, cells in rows:
        if index >= len(cells):
            continue
        # A plain list has no quotes to leave open: a bad line is just an unreadable entry.
        raw = (
            cells[index].strip() if source.format == "txt" else number_text(source.path, line, index + 1, cells[index])
        )
        if not raw or raw.startswith("#"):
            continue
        reason = cells[why].strip() if why is not None and why < len(cells) and cells[why].strip() else None
        yield line, raw, reason


def _source(path: Path, spec: SuppressFile | None = None) -> ListFile:
    if spec is None:
        return ListFile(path, file_format(path))
    return ListFile(path, file_format(path, spec.format), spec.encoding, spec.delimiter, spec.sheet)


def load_suppressions(
    loaded: LoadedManifest, extra: Iterable[tuple[Path, str]] = ()
) -> tuple[dict[str, str], list[Problem]]:
    """Numbers never to send to, mapped to the reason shown in plans; and warnings (none today).

    Raises ``InputError`` listing every entry that is not a valid number: an unreadable do-not-fax line
    must stop the campaign, not shrink the list.
    """
    suppressed: dict[str, str] = {}
    errors: list[Problem] = []
    default_region = loaded.model.recipients.default_region
    lists: list[tuple[Path, SuppressFile | None, str, str | None, tuple[str | int, ...] | None]] = []
    for i, spec in enumerate(loaded.model.suppress):
        path = loaded.resolve(spec.path)
        # A list the manifest names must be readable: a missing do-not-fax list would silently fax everyone on it.
        if not path.is_file() or not os.access(path, os.R_OK):
            raise InputError(f"{path}: cannot read", [loaded.problem(("suppress", i, "path"), f"cannot read {path}")])
        reason = spec.reason or f"suppressed by {path.name}"
        lists.append((path, spec, reason, spec.default_region or default_region, ("suppress", i)))
    # The global list is optional (most machines have none); a missing one is not an error, unlike a named list.
    for path, reason in extra:
        if path.exists():
            lists.append((path, None, reason, default_region, None))
    for path, sfile, reason, region, loc in lists:
        column = (sfile.columns.number if sfile.columns else sfile.column) if sfile else None
        try:
            for line, raw, said in iter_entries(_source(path, sfile), column):
                e164, why = normalise(raw, region)
                if e164 is None:
                    errors.append(Problem(f"suppression entry {raw!r} cannot be read: {why}", file=path, line=line))
                elif sfile is not None:
                    # setdefault: the first list that names a number gives the reason shown, so plans do not change
                    # with the order in which duplicates happen to be read.
                    suppressed.setdefault(e164, reason)
                else:
                    suppressed.setdefault(e164, f"{reason}: {said}" if said else f"{reason} ({path.name}:{line})")
        except _NoColumn as exc:
            message = f"{path.name} has no column {exc.column!r} (its columns: {', '.join(exc.columns) or 'none'})"
            where = loaded.problem((*loc, "columns"), message) if loc else Problem(message, file=path, line=1)
            raise InputError(f"{path}: no column {exc.column!r}", [where]) from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read the suppression list: {exc.strerror or exc}") from None
    if errors:
        shown = errors[:_SHOWN]
        if len(errors) > _SHOWN:
            shown.append(Problem(f"… and {len(errors) - _SHOWN} more unreadable suppression entries"))
        raise InputError(
            f"{len(errors)} suppression entr{'y' if len(errors) == 1 else 'ies'} cannot be read",
            shown,
            hint="fix or remove them (write numbers as +<country code>..., or set default_region / columns / "
            "delimiter for the list): an unreadable do-not-fax entry stops the campaign",
        )
    return suppressed, []


def add_suppression(path: Path, text: str, reason: str, *, region: str | None = None) -> str:
    """Add a number to a suppression list in the list's own format, durably; return it as E.164.

    ``.txt``: one number per line (the reason as a ``#`` comment above it); CSV/TSV: a row with the
    list's own delimiter and columns; ``.xlsx``: a row appended with openpyxl. The entry is then read
    back with the reader campaigns use, so "Added" is only said when a campaign would see it.
    """
    # Stored in E.164, not as typed: the plan compares E.164, and a national form could only be read back with the
    # same default region.
    e164, why = normalise(text, region.upper() if region else None)
    if e164 is None:
        raise InputError(
            f"{text!r} is not a valid number: {why}", hint="write it as +<country code>... or pass --region"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = file_format(path)
    reason = " ".join(reason.split())
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    values = {"number": e164, "reason": reason, "added_at": now_iso(), "added_by": who}
    if fmt == "xlsx":
        _append_xlsx(path, values)
    elif fmt == "txt":
        _append(path, f"# {reason} ({values['added_at']}, {who})\n{e164}\n")
    else:
        _append_table(path, fmt, values)
    _read_back(path, e164, region)
    return e164


def _append(path: Path, text: str) -> None:
    # A list whose last line has no newline would glue our entry onto it.
    if path.exists() and path.stat().st_size:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) not in (b"\n", b"\r"):
                text = "\n" + text
    # Appended and fsynced, never rewritten: a crash leaves the list as it was plus at most our line, and "Added" is
    # only printed once the entry is on disk.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_table(path: Path, fmt: str, values: dict[str, str]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    source = ListFile(path, fmt)
    sep = "\t" if fmt == "tsv" else ","
    columns = list(NEW_LIST_COLUMNS)
    if not new:
        from faxops.tables import sniff_delimiter

        # The list's own delimiter and columns: a semicolon CSV from a spreadsheet must stay one, or every campaign
        # reading it would stop at our row.
        sep = "\t" if fmt == "tsv" else sniff_delimiter(path, source.encoding)
        header = next(iter_table(ListFile(path, fmt, delimiter=sep)), None)
        columns = [c.strip() for c in header[1]] if header else columns
    number_column = "number" if "number" in columns else columns[0]
    row = [values["number"] if c == number_column else values.get(c, "") for c in columns]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    if new:
        writer.writerow(columns)
    writer.writerow(row)
    _append(path, out.getvalue())


def _append_xlsx(path: Path, values: dict[str, str]) -> None:
    from openpyxl import Workbook, load_workbook

    if path.exists():
        check_archive(path)
        try:
            book = load_workbook(path)
        except Exception as exc:  # openpyxl raises a zoo of exceptions on damaged files
            raise InputError(f"{path}: cannot read the workbook: {exc}; nothing was added") from None
        sheet = book.worksheets[0]
        columns = [str(c.value).strip() if c.value is not None else "" for c in sheet[1]]
    else:
        book = Workbook()
        sheet = book.worksheets[0]
        columns = list(NEW_LIST_COLUMNS)
        sheet.append(columns)
    number_column = "number" if "number" in columns else columns[0]
    sheet.append([values["number"] if c == number_column else values.get(c, "") for c in columns])
    buffer = io.BytesIO()
    book.save(buffer)
    # A workbook cannot be appended to: it is rewritten whole, through a temporary file, so that a crash never leaves
    # a half-written list that would stop every campaign.
    atomic_write(path, [buffer.getvalue()], mode=0o600)


def _read_back(path: Path, e164: str, region: str | None) -> None:
    last = None
    try:
        for _, raw, _ in iter_entries(ListFile(path, file_format(path))):
            last = raw
    except (InputError, _NoColumn) as exc:
        raise InputError(
            f"{path}: added {e164}, but the list cannot be read back ({exc}); campaigns reading it will stop "
            "until it is fixed"
        ) from None
    # The last entry must be ours: a list with a trailing quote or a wrong delimiter can swallow the row while still
    # parsing, and then the number would not be suppressed at all.
    if last is None or normalise(last, region.upper() if region else None)[0] != e164:
        raise InputError(
            f"{path}: added {e164}, but reading the list back gives {last!r} as its last entry; check the file"
        )
