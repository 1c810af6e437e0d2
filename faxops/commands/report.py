"""``faxops report``: render the manifest's reporting targets now, or print one report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from faxops.commands.common import EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class ReportArgs:
    manifest: Path
    format: Literal["json", "csv", "html"] | None = None
    mask_numbers: bool = False
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: ReportArgs, output: Output) -> int:
    """Deliver every target (exit 1 when one failed), or print the ``--format`` report to stdout."""
    from faxops import reports
    from faxops.campaign import cpu_workers, open_campaign

    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    campaign.provider.close()
    report = reports.build(campaign, campaign.plan(campaign.store.read(), cpu_workers(), names=True))
    # JSON and CSV are streamed: a report of a million recipients is never one string in memory.
    if args.format == "json":
        output.stream(reports.iter_json(report, mask=args.mask_numbers))
        return EXIT_OK
    if args.format == "csv":
        output.stream(reports.iter_csv(report, mask=args.mask_numbers))
        return EXIT_OK
    if args.format == "html":
        sys.stdout.write(reports.render_html(report, mask=args.mask_numbers))
        return EXIT_OK
    if not campaign.loaded.model.reporting:
        output.line("The manifest has no `reporting:` targets; use --format json|csv|html to print a report.")
        return EXIT_OK
    results = reports.deliver(campaign, report, reports.due_targets(campaign, report, trigger="manual"))
    output.deliveries(results)
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR
