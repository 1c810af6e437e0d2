"""``faxops reconcile``: settle sends of unknown outcome by asking the provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import held_exit, state_writer

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class ReconcileArgs:
    manifest: Path
    lock_timeout: float = 0.0
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: ReconcileArgs, output: Output) -> int:
    """Look every unknown send up by its reference; exit 5 when some are left for a person."""
    from faxops.campaign import open_campaign
    from faxops.reconcile import reconcile

    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    with state_writer(campaign, "reconcile", args.lock_timeout) as writer:
        report = reconcile(campaign, writer, writer.state())
    output.reconcile(report)
    if not (report.found or report.not_sent or report.held):
        output.line("Nothing to reconcile: every recorded send has a known outcome.")
    return held_exit(report.held_count)
