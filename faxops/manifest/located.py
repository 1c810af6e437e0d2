"""YAML read with the line and column of every key and item, so each manifest error names file:line: field.

The YAML is read with ruamel.yaml's round-trip loader, which keeps the line and column of every key
and item. It is safe in the sense that matters here: it builds only plain mappings, sequences and
scalars, never arbitrary Python objects. Values are converted to plain Python before validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from faxops.errors import InputError, Problem
from faxops.manifest.models import Manifest
from faxops.providers import REGISTRY

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
            # str(key): YAML reads `1:` or `yes:` as an int or a bool; as strings they reach pydantic as unknown keys
            # with a location, instead of failing in a dict lookup.
            sub = (*path, str(key))
            try:
                line, col = node.lc.key(key)
                positions[sub] = (line + 1, col + 1)
            # A key merged in through an alias (<<: *defaults) has no position of its own: its parent's is used.
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
    # bool before int: True is an int to Python, and int(True) would turn `express: yes` into 1.
    if isinstance(node, bool) or node is None:
        return node
    # str(), int(), float(): ruamel hands out subclasses (ScalarFloat, ScalarString...) that carry YAML
    # formatting; plain types behave the same in every model, dump and comparison downstream.
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


def pydantic_problems(
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
# A key written twice is an error, not "the last one wins": a second `recipients:` further down a long
# manifest would otherwise replace the first without a word.
_yaml.allow_duplicate_keys = False


def read_yaml(path: Path) -> tuple[bytes, dict[str, Any], dict[tuple[str | int, ...], Position]]:
    """Read a manifest file's bytes, its YAML as plain Python and the position of every key and item.

    Raises ``InputError`` (with the line where YAML gives one) for a missing, oversized, non-UTF-8,
    malformed or non-mapping file.
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
    return raw, data, positions
