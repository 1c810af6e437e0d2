"""``faxops fmt``: manifests in one canonical layout, like ``terraform fmt``, so that diffs show meaning only.

A round trip through ruamel.yaml keeps every comment and the flow style a person chose (``{wait: 10m}``);
what changes is:

* key order: the order of the manifest's models (``campaign``, ``provider``, ``sender``, ...; inside
  each block, the order of its fields as ``faxops schema`` lists them); unknown keys keep their place
  after the known ones (validate reports them);
* indentation: two spaces, list items indented under their key;
* fax numbers in double quotes: an unquoted ``+4930123`` or ``0301234`` is an integer to YAML, its ``+``
  or leading 0 lost; fmt quotes the text as it was written in the file (the loaded integer has lost it).

The order comes from the pydantic models, so a new field is placed correctly without touching this module.
"""

from __future__ import annotations

import io
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from faxops.errors import InputError, Problem
from faxops.manifest import Manifest

_PHONE = re.compile(r"^\+?\d[\d \-().\/]{4,}$")
_MANIFEST_SUFFIXES = (".yaml", ".yml")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never re-wrap a long description: that is a change the author did not make
    yaml.allow_duplicate_keys = False
    return yaml


def format_text(text: str, *, source: Path | str = "<manifest>") -> str:
    """The canonical form of a manifest's text; ``InputError`` (file:line) if it is not YAML."""
    yaml = _yaml()
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InputError(
            f"{source}: not valid YAML",
            [
                Problem(
                    f"malformed YAML: {exc.problem or exc.context or 'malformed YAML'}",
                    file=source,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ],
        ) from None
    except YAMLError as exc:
        raise InputError(f"{source}: not valid YAML", [Problem(f"malformed YAML: {exc}", file=source)]) from None
    if document is None:
        return text
    _canonical(document, [Manifest], text.splitlines())
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


@dataclass(frozen=True)
class Formatted:
    path: Path
    changed: bool


def format_files(paths: Sequence[Path], *, check: bool) -> list[Formatted]:
    """Format each manifest in place (``check``: only report which would change). Errors name the file."""
    results = []
    for path in paths:
        try:
            before = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read the manifest: {exc}") from None
        after = format_text(before, source=path)
        if after != before and not check:
            path.write_text(after, encoding="utf-8")
        results.append(Formatted(path, after != before))
    return results


def find_manifests(targets: Sequence[Path], *, only_manifests: bool = False) -> list[Path]:
    """Files as given; folders (default: the current one) searched for manifests, not recursively.

    ``only_manifests`` drops given files that are not manifests too: a pre-commit hook receives every
    changed YAML file (CI pipelines, compose files), and must leave those alone.
    """
    found: list[Path] = []
    for target in targets or [Path()]:
        if target.is_dir():
            found.extend(p for p in sorted(target.iterdir()) if p.suffix in _MANIFEST_SUFFIXES and is_manifest(p))
        elif not only_manifests or is_manifest(target):
            found.append(target)
    return found


def is_manifest(path: Path) -> bool:
    """A YAML file with a top-level ``campaign:`` key (CI files and others in the folder are not manifests)."""
    try:
        with path.open(encoding="utf-8") as fh:
            return any(line.startswith("campaign:") for line in fh)
    except (OSError, UnicodeDecodeError):
        return False


# --- the canonical form -----------------------------------------------------------------------------


def _canonical(node: Any, annotations: Sequence[Any], lines: list[str]) -> None:
    if isinstance(node, CommentedMap):
        model = _model_for(node, annotations)
        if model is not None:
            fields = _field_order(model)
            known = [k for k in fields if k in node]
            for key in known + [k for k in node if k not in fields]:
                node.move_to_end(key)  # moves the key with its comments
            children: list[Any] = []
        else:
            fields = {}
            children = [args[1] for a in _leaves(annotations) if (args := _dict_args(a))]
        for key in list(node):
            _canonical(node[key], [fields[key]] if key in fields else children, lines)
            quoted = _quoted(node[key], lines, node.lc.value(key) if key in node.lc.data else None)
            if quoted is not None:
                node[key] = quoted
        if model is None:
            _quote_keys(node, lines)
    elif isinstance(node, CommentedSeq):
        items = [typing.get_args(a)[0] for a in _leaves(annotations) if typing.get_origin(a) is list]
        for i in range(len(node)):
            _canonical(node[i], items, lines)
            quoted = _quoted(node[i], lines, node.lc.item(i) if i in node.lc.data else None)
            if quoted is not None:
                node[i] = quoted


_WRITTEN_NUMBER = re.compile(r"[+0][0-9_]{4,}")


def _quoted(value: Any, lines: list[str], position: tuple[int, int] | None) -> str | None:
    """The double-quoted form of a fax number written as a plain scalar; None for anything else."""
    quoted: str
    if isinstance(value, str) and not isinstance(value, DoubleQuotedScalarString) and _PHONE.match(value):
        quoted = DoubleQuotedScalarString(value)
        return quoted
    if isinstance(value, int) and not isinstance(value, bool) and position is not None:
        # YAML read it as an integer: recover the text as written (+ and leading zeros) from the file.
        line, column = position
        written = _WRITTEN_NUMBER.match(lines[line], column) if line < len(lines) else None
        if written is not None:
            quoted = DoubleQuotedScalarString(written.group())
            return quoted
    return None


def _quote_keys(node: CommentedMap, lines: list[str]) -> None:
    """Numbers used as keys (``outcomes: {"+33142685301": busy}``), quoted in place, order kept."""
    for position, key in enumerate(list(node)):
        quoted = _quoted(key, lines, node.lc.key(key) if key in node.lc.data else None)
        if quoted is not None:
            value = node.pop(key)
            node.insert(position, quoted, value)


def _model_for(node: CommentedMap, annotations: Sequence[Any]) -> type[BaseModel] | None:
    models = [a for a in _leaves(annotations) if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models) > 1:  # a tagged union (provider, reporting): the one whose `type` matches
        tag = node.get("type")
        for model in models:
            field = model.model_fields.get("type")
            if field is not None and tag in typing.get_args(field.annotation):
                return model
        return None
    return models[0] if models else None


def _field_order(model: type[BaseModel]) -> dict[str, Any]:
    """The model's keys as written in YAML (aliases such as ``from``), in order, with their annotations."""
    return {(field.alias or name): field.annotation for name, field in model.model_fields.items()}


def _leaves(annotations: Sequence[Any]) -> Iterator[Any]:
    """Annotations with ``Annotated``, ``Optional`` and unions taken apart."""
    for annotation in annotations:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            yield from _leaves([typing.get_args(annotation)[0]])
        elif origin is typing.Union or origin is types.UnionType:
            yield from _leaves(typing.get_args(annotation))
        else:
            yield annotation


def _dict_args(annotation: Any) -> tuple[Any, ...] | None:
    return typing.get_args(annotation) if typing.get_origin(annotation) is dict else None
