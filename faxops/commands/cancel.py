"""``faxops cancel``: cancel queued faxes where the provider supports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_ERROR, EXIT_OK, number_arg, state_writer
from faxops.errors import InputError

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class CancelArgs:
    manifest: Path
    numbers: list[str] = field(default_factory=list)
    all: bool = False
    lock_timeout: float = 0.0
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: CancelArgs, output: Output) -> int:
    """Cancel the named recipients' queued faxes (or all with ``--all``); exit 1 if any cancel failed."""
    from faxops.campaign import open_campaign
    from faxops.tracking import cancel

    if not args.numbers and not args.all:
        raise InputError("name the recipients to cancel, or pass --all to cancel every queued fax")
    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    numbers = {number_arg(n, campaign.loaded) for n in args.numbers} if args.numbers else None
    with state_writer(campaign, "cancel", args.lock_timeout) as writer:
        report = cancel(campaign, writer, numbers)
    output.line(f"Canceled {len(report.canceled)} fax(es).")
    for number in report.not_open:
        output.warning(f"{number}: not queued (already sent, final, or not in the state); left alone")
    for line in report.failed:
        output.failure(line)
    return EXIT_ERROR if report.failed else EXIT_OK
