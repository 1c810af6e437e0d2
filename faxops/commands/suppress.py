"""``faxops suppress add``: put a number on a do-not-fax list."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK
from faxops.errors import InputError

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class SuppressAddArgs:
    number: str
    reason: str
    list: Path | None = None
    region: str | None = None


def run(args: SuppressAddArgs, output: Output) -> int:
    """Append the number (normalised) with its reason to the list, the global one by default."""
    from faxops.suppression import add_suppression, global_suppression_list

    path = args.list or global_suppression_list()
    if path is None:
        raise InputError("no global suppression list: set FAXOPS_SUPPRESSION_LIST, or pass --list FILE")
    number = add_suppression(path, args.number, args.reason, region=args.region)
    output.line(f"Added {number} to {path}: never sent by any campaign that reads this list.")
    return EXIT_OK
