"""``faxops force-unlock``: remove a state lock left by a process that is gone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class ForceUnlockArgs:
    manifest: Path
    lock_id: str


def run(args: ForceUnlockArgs, output: Output) -> int:
    """Remove the lock if its id matches (the id guards against removing a newer holder's lock)."""
    from faxops.state import StatePaths
    from faxops.state.lock import force_unlock

    info = force_unlock(StatePaths.for_manifest(args.manifest).lock, args.lock_id)
    output.line(f"Removed {info.describe()}.")
    return EXIT_OK
