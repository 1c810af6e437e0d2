"""Path confinement: a manifest may name files only inside its own folder, unless the runner allows more."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from faxops.errors import Problem
from faxops.manifest.located import LoadedManifest
from faxops.manifest.reporting import FileReport

ALLOW_OUTSIDE_ENV = "FAXOPS_ALLOW_OUTSIDE"


def allowed_roots(flags: Sequence[Path] = ()) -> list[Path]:
    """Folders outside a campaign that its manifest may name: ``--allow-outside`` plus $FAXOPS_ALLOW_OUTSIDE.

    Both come from the person running faxops, never from the manifest, which may come from a pull request.
    """
    named = [Path(p) for p in os.environ.get(ALLOW_OUTSIDE_ENV, "").split(os.pathsep) if p]
    return [*flags, *named]


def _inside(real: str, roots: Sequence[str]) -> bool:
    # The separator matters: /srv/camp must not admit /srv/campaign-other by a plain prefix match.
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def outside_problems(loaded: LoadedManifest, allow_outside: Sequence[Path]) -> list[Problem]:
    """Every file the manifest names that is not inside its folder (after symlinks) nor explicitly allowed.

    A manifest in Git is input from whoever can open a pull request: without this, ``documents:
    [/etc/passwd]`` would fax a file of the CI runner, and a report path could overwrite one.
    """
    base = os.path.realpath(loaded.base_dir)
    roots = [base, *(os.path.realpath(p.expanduser()) for p in allow_outside)]
    named = [*iter_paths(loaded)]
    # Report files are written, not read: a path outside the folder would let a manifest overwrite any file the runner
    # can write, so they are confined like the inputs.
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


def iter_paths(loaded: LoadedManifest) -> Iterator[tuple[tuple[str | int, ...], Path]]:
    """Every input file the manifest names, with the manifest location that names it."""
    model = loaded.model
    for i, doc in enumerate(model.documents):
        yield ("documents", i, "path"), loaded.resolve(doc.path)
    for i, rfile in enumerate(model.recipients.files):
        yield ("recipients", "files", i, "path"), loaded.resolve(rfile.path)
    for i, sfile in enumerate(model.suppress):
        yield ("suppress", i, "path"), loaded.resolve(sfile.path)
