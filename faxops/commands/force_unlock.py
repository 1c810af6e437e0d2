"""``faxops force-unlock``: remove a state lock left by a process that is gone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class ForceUnlockArgs:
    manifest: Path
    lock_id: str
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: ForceUnlockArgs, output: Output) -> int:
    """Remove the lock if its id matches (the id guards against removing a newer holder's lock)."""
    from faxops.manifest import load_manifest
    from faxops.state import open_store

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    store = open_store(args.manifest, loaded.name, loaded.model.state)
    from faxops.state.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        held = store.lock_state()[1]
        info = store.force_unlock(args.lock_id)
        if held:
            output.line(f"Removed {info.describe()}; its connection was ended, so it can record and send nothing more.")
        else:
            output.line(f"Removed {info.describe()}. It was not needed: the holder had already ended.")
        return EXIT_OK
    info = store.force_unlock(args.lock_id)
    output.line(f"Removed {info.describe()}.")
    return EXIT_OK
