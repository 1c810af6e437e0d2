"""``faxops fmt``: rewrite manifests in the canonical layout (or, with ``--check``, list those that differ)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class FmtArgs:
    manifests: list[Path] = field(default_factory=list)
    check: bool = False
    only_manifests: bool = False


def run(args: FmtArgs, output: Output) -> int:
    """Format the files; with ``--check`` change nothing and exit 1 when some would change."""
    from faxops.fmt import find_manifests, format_files

    results = format_files(find_manifests(args.manifests, only_manifests=args.only_manifests), check=args.check)
    changed = [r.path for r in results if r.changed]
    for path in changed:
        output.line(str(path))  # like terraform fmt: the files (that would be) rewritten, one per line
    if args.check and changed:
        output.note(f"{len(changed)} file(s) not in the canonical layout; run `faxops fmt` to fix them.")
        return EXIT_ERROR
    return EXIT_OK
