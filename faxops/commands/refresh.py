"""``faxops refresh``: ask the provider for the status of every fax not final yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK, Signals, report_if_due, state_writer

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class RefreshArgs:
    manifest: Path
    force: bool = False
    lock_timeout: float = 0.0
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: RefreshArgs, output: Output) -> int:
    """Poll, record what changed, render due reports. Refused credentials end in their error's exit code."""
    from faxops.campaign import open_campaign
    from faxops.tracking import refresh

    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    with state_writer(campaign, "refresh", args.lock_timeout) as writer, Signals(output) as signals:
        report = refresh(campaign, writer, force=args.force, stop=signals.stop)
    if not report.open and not report.pushed:
        output.line("Nothing to refresh: every recorded fax has a final status.")
    else:
        output.refresh(report)
    report_if_due(campaign, output)
    if report.refused is not None:
        # What was polled before the refusal is recorded; the run still failed, as its type says.
        raise report.refused
    return EXIT_OK
