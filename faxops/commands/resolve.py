"""``faxops resolve``: a person decides a send of unknown outcome that the provider cannot settle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK, number_arg
from faxops.errors import InputError

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class ResolveArgs:
    manifest: Path
    number: str
    sent: str | None = None  # the job ID, when it was sent
    not_sent: bool = False
    note: str = ""
    lock_timeout: float = 0.0
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: ResolveArgs, output: Output) -> int:
    """Record the decision (and who made it) for one pending send."""
    from faxops.manifest import load_manifest
    from faxops.state import events, open_store

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    number = number_arg(args.number, loaded)  # read as cancel and --resend read it, before taking the lock
    store = open_store(args.manifest, loaded.name, loaded.model.state)
    with store.writer("resolve", args.lock_timeout) as writer:
        summary = writer.state().summaries.get(number)
        if summary is None or summary.status != "pending":
            what = "is not in the recorded state" if summary is None else f"is {summary.status}, not unknown"
            raise InputError(
                f"{number} {what}; only sends of unknown outcome can be resolved",
                hint="`faxops plan` lists them under `? unknown`",
            )
        holder = writer.holder
        # Who decided is kept in the lockfile's audit trail: a person's word replaces the provider's here.
        by = f"{holder.who}@{holder.host}" if holder else "?"
        writer.record(events.resolve(summary.reference, number, job_id=args.sent, note=args.note, by=by))
    verdict = f"sent as job {args.sent}" if args.sent else "not sent; the next apply sends it"
    output.line(f"Recorded {number}: {verdict}.")
    return EXIT_OK
