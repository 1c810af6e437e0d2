"""``faxops apply``: send what the plan says, recording every job; the run itself is ``faxops.runner``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_ERROR, Signals, held_exit, report_if_due
from faxops.errors import ApprovalError, FaxopsError, InputError, InterruptedRun

if TYPE_CHECKING:
    from faxops.apply import JobResult
    from faxops.campaign import Campaign
    from faxops.output import Output
    from faxops.plan import Plan
    from faxops.planfile import SavedPlan
    from faxops.receipt import ReceiptLog
    from faxops.reconcile import ReconcileReport
    from faxops.tracking import RefreshReport


@dataclass(frozen=True)
class ApplyArgs:
    target: Path  # a manifest, or a plan saved with `plan --out`
    auto_approve: bool = False
    parallelism: int | None = None
    lock_timeout: float = 0.0
    details: bool = False
    refresh: bool = True
    resend: list[str] = field(default_factory=list)
    reason: str | None = None
    max_sends: int | None = None
    max_pages: int | None = None
    wait: bool = False
    receipt: Path | None = None  # --receipt FILE
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


class TerminalUI:
    """:class:`faxops.runner.ApplyUI` on the terminal, keeping the receipt's log as the run goes."""

    def __init__(self, output: Output, signals: Signals, campaign: Campaign, log: ReceiptLog, *, details: bool) -> None:
        self.output = output
        self.signals = signals
        self.campaign = campaign
        self.log = log
        self.details = details

    def refreshed(self, report: RefreshReport) -> None:
        self.output.refresh(report, brief=True)

    def reconciled(self, report: ReconcileReport) -> None:
        self.output.reconcile(report)

    def show_plan(self, plan: Plan, *, saved: bool) -> None:
        if saved:
            self.output.plan_summary_line(plan)
            # The plan was reviewed; what was not reviewable then (the lockfile's size) is still shown.
            self.output.problems(w for w in self.campaign.warnings if w.file == self.campaign.paths.lockfile)
            return
        from faxops.plan_model import plan_json_bytes
        from faxops.receipt import plan_digest

        self.output.problems(self.campaign.warnings[:20])
        self.output.plan(plan, provider=self.campaign.provider.name, details=self.details)
        self.log.plan_digest = plan_digest(plan_json_bytes(plan))

    def confirm(self, count: int) -> bool:
        if not self.output.interactive:
            why = "runs in automation (CI or FAXOPS_IN_AUTOMATION is set)" if self.output.automation else None
            raise ApprovalError(
                f"apply needs confirmation but {why or 'there is no terminal to ask'}; pass --auto-approve or "
                "apply a saved plan; nothing was sent"
            )
        with self.signals.paused():  # Ctrl-C at the prompt quits at once: nothing is in flight
            return self.output.confirm(count)

    @contextmanager
    def sending(self, plan: Plan) -> Iterator[Callable[[JobResult], None]]:
        self.log.planned(plan.pages, plan.cost, plan.currency)
        with self.output.progress(len(plan.to_submit)) as progress:

            def on_result(result: JobResult) -> None:
                progress(result)
                self.log.observe(result)

            yield on_result

    def note(self, text: str) -> None:
        self.output.note(text)

    def deferred(self, count: int, next_due: datetime) -> None:
        due_at = f"{count} recipient(s) deferred; the next becomes due at {next_due.astimezone(UTC):%Y-%m-%d %H:%M}Z"
        self.output.hint(
            f"{due_at} (run apply again then, or use --wait).",
            f"{due_at}: schedule a pipeline run of `faxops apply --auto-approve` then.",
        )

    def nothing_to_send(self) -> None:
        self.output.line("No changes. Nothing to send.", style="green")

    def waiting(self, due: datetime, deferred: int) -> None:
        self.output.waiting(due, deferred)


def _open(args: ApplyArgs) -> tuple[Campaign, SavedPlan | None]:
    """The campaign to apply, and the saved plan when ``args.target`` is one (checked against it)."""
    from faxops import planfile
    from faxops.campaign import open_campaign

    # A saved plan opens the manifest beside it (recorded relative to the plan), never the one given.
    saved = planfile.load(args.target) if planfile.looks_like_plan(args.target) else None
    manifest = planfile.manifest_of(saved, args.target) if saved else args.target
    campaign = open_campaign(manifest, allow_outside=args.allow_outside)
    if saved:
        # Checked before the lock is taken: a stale plan must not even briefly block another run.
        planfile.check_bound(saved, campaign.name, campaign.store.identity())
        planfile.check_inputs(saved, campaign.input_digests())
        if args.resend or args.wait:
            raise InputError("--resend and --wait apply to a manifest, not to a saved plan")
    return campaign, saved


def run(args: ApplyArgs, output: Output) -> int:
    """Apply a manifest or a saved plan; exit 1 when a job failed or the run stopped, 5 when sends are held."""
    from faxops import receipt
    from faxops.receipt import ReceiptLog, plan_digest
    from faxops.runner import ApplyRequest, ApplyResult, guards_for, resend_numbers, run_apply

    campaign, saved = _open(args)
    signals = Signals(output)
    request = ApplyRequest(
        saved=saved,
        resend=resend_numbers(campaign, args.resend, args.reason),
        guards=guards_for(campaign, args.max_sends, args.max_pages),
        wait=args.wait,
        refresh=args.refresh,
        auto_approve=args.auto_approve,
        concurrency=args.parallelism,
        stop=signals.stop,
    )
    before = campaign.store.header()  # the receipt says which serial the run started from
    log = ReceiptLog()
    if saved:
        log.plan_digest, log.plan_source = plan_digest(args.target.read_bytes()), f"saved plan {args.target.name}"
    ui = TerminalUI(output, signals, campaign, log, details=args.details)
    result: ApplyResult | None = None
    try:
        # The digests of manifest and documents are recorded when the writer folds at the end.
        with campaign.store.writer("apply", args.lock_timeout, campaign.applied_with()) as writer:
            if writer.stale is not None:
                output.note(
                    f"Note: the previous {writer.stale.describe()} ended without releasing it; "
                    "its journal was recovered."
                )
            with signals:
                result = run_apply(campaign, writer, request, ui)
    except FaxopsError:
        # The fold failed after the run (a full disk): say what was sent, and where unjournalled job IDs
        # were rescued, before the error.
        if result is not None and (result.report.submitted or result.report.stopped):
            output.apply_report(result.report)
        raise
    finally:
        campaign.provider.close()
    total = result.report
    # Reports first, then the interruption: the operator must see what was sent before the exit code.
    if signals.received:
        total.stopped = total.stopped or f"interrupted ({signals.received})"
    if total.submitted or total.stopped:
        output.apply_report(total)
    output.note(f"State saved to {campaign.store.identity()}")
    report_if_due(campaign, output)
    for where in receipt.write_receipts(campaign, args.receipt, log, total, before, os.environ):
        output.note(f"Receipt written to {where}")
    if signals.received:
        raise InterruptedRun("apply was interrupted; every fax sent so far is recorded", signal_name=signals.received)
    # A rejected fax is exit 1 even though the run went on: a pipeline must notice it.
    if total.stopped or total.errors:
        return EXIT_ERROR
    return held_exit(result.held + total.outcomes["unknown"])
