"""Checks of what a manifest names, run when a campaign is opened and before anything is sent.

Each returns ``Problem`` values instead of raising, so that ``open_campaign`` can report every problem at
once: documents that cannot be read, files that are missing, secret references that do not resolve,
fields a provider cannot carry, and lists with too few valid numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel

from faxops import secrets
from faxops.chunks import Chunk
from faxops.documents import DocumentError, load_document
from faxops.domain import Document, Invalid
from faxops.errors import Problem
from faxops.fields import resolve_secret, secret_problem
from faxops.manifest import LoadedManifest, iter_paths
from faxops.providers import Provider

_SECRET_PREFIXES = ("${env:", "${file:")
_T = TypeVar("_T")


def load_documents(loaded: LoadedManifest) -> tuple[list[Document], list[Problem]]:
    """Read and fingerprint every document the manifest names, with a located problem for each that fails."""
    problems: list[Problem] = []
    documents: list[Document] = []
    for i, spec in enumerate(loaded.model.documents):
        doc_path = loaded.resolve(spec.path)
        loc: tuple[str | int, ...] = ("documents", i, "path")
        try:
            documents.append(load_document(doc_path, spec.name))
        except FileNotFoundError:
            problems.append(loaded.problem(loc, f"document not found: {doc_path}"))
        except IsADirectoryError:
            problems.append(loaded.problem(loc, f"{doc_path} is a directory, not a document"))
        except PermissionError:
            problems.append(loaded.problem(loc, f"document is not readable: {doc_path}"))
        except OSError as exc:  # a symlink loop (ELOOP), a FIFO, an I/O error: the file's problem, not ours
            problems.append(loaded.problem(loc, f"cannot read the document {doc_path}: {exc.strerror or exc}"))
        except DocumentError as exc:
            problems.append(loaded.problem(loc, f"{doc_path.name}: {exc}"))
    return documents, problems


def named_file_problems(loaded: LoadedManifest) -> list[Problem]:
    """Recipient and suppression files the manifest names that are missing or unreadable."""
    problems: list[Problem] = []
    for loc, other in iter_paths(loaded):
        # Documents were opened (and their errors located) by load_documents; a second "not found" would repeat it.
        if loc[0] == "documents":
            continue
        if not other.is_file():
            problems.append(loaded.problem(loc, f"file not found: {other}"))
        # Checked here, with every other problem, rather than when the list is streamed: an unreadable file
        # would otherwise stop a plan minutes into a large list, with the manifest's other problems unreported.
        elif not os.access(other, os.R_OK):
            problems.append(loaded.problem(loc, f"file is not readable: {other}"))
    return problems


class RowTally:
    """Counts valid and invalid rows as they stream past, keeping the first invalid ones as examples."""

    def __init__(self) -> None:
        self.valid = 0
        self.invalid = 0
        self.examples: list[Invalid] = []

    def count(self, candidates: Iterable[_T]) -> Iterator[_T]:
        for candidate in candidates:
            if isinstance(candidate, Chunk):
                # A chunk marks an invalid row with an empty number; counting them in C keeps a million-row tally
                # cheap.
                invalid = candidate.numbers.count("")
                self.invalid += invalid
                self.valid += len(candidate) - invalid
                # Only three examples are kept: the message must stay one readable line for a list of any size.
                for i in range(len(candidate)) if invalid and len(self.examples) < 3 else ():
                    if not candidate.numbers[i]:
                        self.examples.append(candidate.invalid(i))
                        if len(self.examples) >= 3:
                            break
            elif isinstance(candidate, Invalid):
                self.invalid += 1
                if len(self.examples) < 3:
                    self.examples.append(candidate)
            else:
                self.valid += 1
            yield candidate


def invalid_share_problem(loaded: LoadedManifest, tally: RowTally) -> Problem | None:
    """An error when no row, or too small a share of rows, has a valid number; else None.

    Invalid rows are skipped with a warning, which is right for a few typos but not for a wrong
    ``default_region`` or number column: that would quietly shrink the campaign to a fraction.
    """
    total = tally.valid + tally.invalid
    if not tally.invalid:
        return None
    limit = loaded.model.recipients.max_invalid_percent
    share = 100 * tally.invalid / total
    if tally.valid and share <= limit:
        return None
    examples = "; ".join(f"{e.source}: {e.raw!r} ({e.reason})" for e in tally.examples)
    if not tally.valid:
        message = f"none of the {total:,} recipient rows has a valid number (e.g. {examples})"
    else:
        message = (
            f"{tally.invalid:,} of {total:,} recipient rows ({share:.0f} %) have no valid number, more than "
            f"recipients.max_invalid_percent ({limit:g} %) allows (e.g. {examples}); check default_region and "
            "the number column, or raise the limit"
        )
    return loaded.problem(("recipients",), message)


#: secret references that name an account rather than prove it (see ``faxops.secrets``)
_IDENTIFIERS = frozenset({"username", "client_id"})


def secret_problems(loaded: LoadedManifest, model: BaseModel, loc: tuple[str | int, ...]) -> list[Problem]:
    """Every ``${env:...}``/``${file:...}`` reference in ``model`` that cannot be resolved.

    Those that can are resolved once here, so that every command that opens the campaign knows every
    secret and scrubs it from what it prints and writes, even one that never sends a credential."""
    problems = []
    resolved: dict[str, str] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        values: list[tuple[tuple[str | int, ...], Any]] = [((*loc, name), value)]
        if isinstance(value, list):
            values = [((*loc, name, i), v) for i, v in enumerate(value)]
        for sub_loc, item in values:
            if isinstance(item, BaseModel):
                problems.extend(secret_problems(loaded, item, sub_loc))
            elif isinstance(item, str) and item.startswith(_SECRET_PREFIXES):
                why = secret_problem(item, loaded.base_dir)
                if why is not None:
                    problems.append(loaded.problem(sub_loc, why))
                    continue
                resolved[name] = resolve_secret(item, loaded.base_dir, identifier=name in _IDENTIFIERS)
                if name not in _IDENTIFIERS and len(resolved[name]) < secrets.MIN_LENGTH:
                    short = f"a secret shorter than {secrets.MIN_LENGTH} characters is not masked in output"
                    problems.append(loaded.problem(sub_loc, short, severity="warning"))
    # An API that echoes the request back in an error shows the Authorization header, where neither part
    # appears as written: only base64("user:password") does, so that form is masked as well.
    if "username" in resolved and "password" in resolved:  # HTTP Basic: the header's base64 too
        secrets.register_basic(resolved["username"], resolved["password"])
    return problems


def personalisation_warnings(loaded: LoadedManifest, provider: Provider) -> list[Problem]:
    """Fields mapped in the manifest that this provider's API has no place for."""
    if provider.personalisation:
        return []
    spec = loaded.model.recipients
    located: list[tuple[str | int, ...]] = [
        ("recipients", "files", i, "columns", "fields") for i, f in enumerate(spec.files) if f.columns.fields
    ]
    located += [("recipients", "inline", i, "fields") for i, r in enumerate(spec.inline) if r.fields]
    return [
        loaded.problem(
            loc, f"{provider.name} has no per-recipient fields: these values will not reach the fax", severity="warning"
        )
        for loc in located[:1]
    ]
