"""``faxops resolve``: a person decides a send of unknown outcome that the provider cannot settle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK, close_quietly, number_arg
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
    from faxops.clock import now_iso
    from faxops.manifest import load_manifest
    from faxops.state import StatePaths, StateWriter

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    number = number_arg(args.number, loaded)  # read as cancel and --resend read it, before taking the lock
    writer = StateWriter(
        StatePaths.for_manifest(args.manifest, loaded.name),
        loaded.name,
        operation="resolve",
        lock_timeout=args.lock_timeout,
    )
    try:
        summary = writer.state().summaries.get(number)
        if summary is None or summary.status != "pending":
            what = "is not in the recorded state" if summary is None else f"is {summary.status}, not unknown"
            raise InputError(
                f"{number} {what}; only sends of unknown outcome can be resolved",
                hint="`faxops plan` lists them under `? unknown`",
            )
        info = writer.lock.info
        writer.record(
            {
                "t": "resolve",
                "ref": summary.reference,
                "number": number,
                "sent": bool(args.sent),
                "job_id": args.sent,
                "note": args.note,
                "by": f"{info.who}@{info.host}" if info else "?",
                "at": now_iso(),
            }
        )
    except BaseException:
        close_quietly(writer, output)
        raise
    writer.close()
    verdict = f"sent as job {args.sent}" if args.sent else "not sent; the next apply sends it"
    output.line(f"Recorded {number}: {verdict}.")
    return EXIT_OK
