"""The whole of an apply run, between opening the campaign and reporting: the library half of ``faxops apply``.

Each round: read the state, refresh what is open, reconcile sends of unknown outcome *before* anything
new is sent (a blind resend could fax someone twice), plan, and submit what is due. The first round also
checks the saved plan, ``--resend`` and the budget guards, and asks for confirmation. With ``wait`` the
run sleeps until the next send window opens and plans again. The terminal is reached only through
:class:`ApplyUI`, so that this module never prints.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from faxops import clock
from faxops.apply import ApplyOptions, ApplyReport, JobResult, execute, record_expired
from faxops.errors import ApprovalError, InputError, StalePlanError
from faxops.plan import Action, Guards, Plan, guard_problems

if TYPE_CHECKING:
    from faxops.campaign import Campaign
    from faxops.planfile import SavedPlan
    from faxops.reconcile import ReconcileReport
    from faxops.state import RecordedState, StateWriter
    from faxops.tracking import RefreshReport

# When a whole round was refused by the provider (all "not sent"), --wait must not hammer it.
_IDLE_AFTER_NOTHING_ACCEPTED = 60.0


class ApplyUI(Protocol):
    """What the run tells (and asks) the person running it."""

    def refreshed(self, report: RefreshReport) -> None:
        """A refresh ran before planning."""

    def reconciled(self, report: ReconcileReport) -> None:
        """Unknown outcomes were looked up before planning."""

    def show_plan(self, plan: Plan, *, saved: bool) -> None:
        """The first round's plan (for a saved plan: its summary only; the plan itself was reviewed)."""

    def confirm(self, count: int) -> bool:
        """Ask to send ``count`` faxes; raise ApprovalError when nobody can be asked."""

    def sending(self, plan: Plan) -> AbstractContextManager[Callable[[JobResult], None]]:
        """A round of ``plan.to_submit`` starts: a callback fed with each job's result while it runs."""

    def note(self, text: str) -> None:
        """A remark that does not change the outcome."""

    def deferred(self, count: int, next_due: datetime) -> None:
        """The run ends with ``count`` recipients not due yet; the first becomes due at ``next_due``."""

    def nothing_to_send(self) -> None:
        """The plan had nothing to submit and nothing to wait for."""

    def waiting(self, due: datetime, deferred: int) -> None:
        """The run sleeps until ``due`` for ``deferred`` recipients."""


@dataclass
class ApplyRequest:
    """How to run: what the command line (or a saved plan) asked for."""

    saved: SavedPlan | None = None
    resend: dict[str, str] = field(default_factory=dict)  # number -> reason; consumed as they are sent
    guards: Guards = field(default_factory=Guards)
    wait: bool = False
    refresh: bool = True
    auto_approve: bool = False
    concurrency: int | None = None  # None: the manifest's schedule.concurrency
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class ApplyResult:
    """The run's totals, and how many sends of unknown outcome are held for a person."""

    report: ApplyReport
    held: int = 0


def run_apply(campaign: Campaign, writer: StateWriter, request: ApplyRequest, ui: ApplyUI) -> ApplyResult:
    """Run rounds until nothing is due (or, with ``wait``, until nothing is left or the run is stopped)."""
    result = ApplyResult(ApplyReport())
    first = True
    while True:
        state, held = _settled_state(campaign, writer, request, ui)
        if held is not None:
            result.held = held
        plan = _plan(campaign, state, request)
        if first:
            # Before anything is recorded: a --resend that cannot go must not leave expiries behind.
            _check_request(campaign, plan, state, request)
        if plan.expired:
            record_expired(writer, plan.expired)
        if first:
            _approve(plan, request, ui)
            first = False
        if plan.to_submit:
            report = _send(campaign, plan, writer, request, ui)
            result.report.merge(report)
            # A forced resend is forced once: the next round must not force the same number again.
            for action in plan.to_submit:
                request.resend.pop(action.number, None)
            if request.wait and not (request.stop.is_set() or result.report.stopped):
                if report.outcomes["not_sent"] and not report.outcomes["accepted"]:
                    ui.note("The provider accepted nothing this round; trying again in 60 s.")
                    clock.CLOCK.sleep(_IDLE_AFTER_NOTHING_ACCEPTED, request.stop)
                continue  # plan again: this round's failures may be due for a retry before the next window
        elif not result.report.submitted and (not request.wait or not plan.count(Action.DEFER)):
            ui.nothing_to_send()
        if not _wait_for_next_window(plan, request, result.report, ui):
            return result


def _settled_state(
    campaign: Campaign, writer: StateWriter, request: ApplyRequest, ui: ApplyUI
) -> tuple[RecordedState, int | None]:
    """The state after refreshing what is open and reconciling unknown outcomes; and how many are held."""
    from faxops import planfile
    from faxops.reconcile import reconcile
    from faxops.tracking import needs_refresh, refresh

    state = writer.state(detail=request.resend)
    if request.saved:
        planfile.check_state(request.saved, state.fingerprint())
    # A saved plan never refreshes: a refresh changes the state it was reviewed against.
    if not request.saved and request.refresh and needs_refresh(campaign, state):
        ui.refreshed(refresh(campaign, writer, stop=request.stop))
        state = writer.state()
    if not any(s.status == "pending" for s in state.summaries.values()):
        return state, None
    if request.saved:
        raise StalePlanError("the state holds sends of unknown outcome; run `faxops reconcile` and plan again")
    # Reconcile before planning: a pending send planned as "retry" could fax the recipient twice.
    report = reconcile(campaign, writer, state)
    ui.reconciled(report)
    return writer.state(), report.held_count


def _plan(campaign: Campaign, state: RecordedState, request: ApplyRequest) -> Plan:
    from faxops.campaign import cpu_workers

    return campaign.plan(state, cpu_workers(), resend=request.resend)


def _check_request(campaign: Campaign, plan: Plan, state: RecordedState, request: ApplyRequest) -> None:
    """``--resend`` numbers that cannot be sent now are errors before anything is sent."""
    # With --wait a deferred resend is simply waited for; without it, silence would read as "sent".
    if request.resend and not request.wait:
        refuse_deferred_resends(campaign, plan, state, request.resend)
    can_go = {a.number for a in plan.to_submit + plan.groups[Action.DEFER]}
    missing = sorted(n for n in request.resend if n not in can_go)
    if missing:
        raise InputError(
            f"--resend {', '.join(missing)}: not a recipient of this campaign that can be sent "
            "(see `faxops plan`: unknown outcomes must be resolved first)"
        )


def _approve(plan: Plan, request: ApplyRequest, ui: ApplyUI) -> None:
    """The first round: the saved plan still holds, the guards pass, and someone said yes."""
    saved = request.saved
    # The reviewed plan is what may be sent: any difference in who or which attempt makes it stale.
    if saved is not None and saved.submit_key() != plan.submit_key():
        raise StalePlanError("the saved plan no longer matches what would be sent; plan again")
    ui.show_plan(plan, saved=saved is not None)
    # With --wait the deferred recipients are sent by this run too, so the guards count them.
    problems = guard_problems(plan, request.guards, include_deferred=request.wait)
    if problems:
        raise ApprovalError(
            "the run would exceed a budget guard: " + "; ".join(problems) + ". Nothing was sent.",
            hint="narrow the campaign, or raise the guard (--max-sends, --max-pages, budget:)",
        )
    if plan.campaign_stop and plan.to_submit:
        ui.note("apply stops at the first document or account failure.")
    deferred = plan.count(Action.DEFER) if request.wait else 0
    # A saved plan was approved when it was reviewed and saved; applying it is the approval.
    asks = saved is None and not request.auto_approve and (plan.to_submit or deferred)
    if asks and not ui.confirm(len(plan.to_submit) + deferred):
        raise ApprovalError("Apply cancelled; nothing was sent.")


def _send(campaign: Campaign, plan: Plan, writer: StateWriter, request: ApplyRequest, ui: ApplyUI) -> ApplyReport:
    with ui.sending(plan) as progress:
        # The pace is read per round: --parallelism overrides the manifest's concurrency, nothing else.
        options = ApplyOptions(pace=campaign.pace(request.concurrency), stop=request.stop, on_result=progress)
        return execute(campaign, plan, writer, options)


def _wait_for_next_window(plan: Plan, request: ApplyRequest, total: ApplyReport, ui: ApplyUI) -> bool:
    """Sleep until the next deferred recipient is due; False when the run should end instead."""
    deferred = plan.groups[Action.DEFER]
    # A stopped run (Ctrl-C, refused credentials, a campaign-wide failure) never waits for more.
    if not request.wait or not deferred or request.stop.is_set() or total.stopped:
        if deferred and not request.wait:
            ui.deferred(len(deferred), min(a.due for a in deferred if a.due is not None))
        return False
    due = min(a.due for a in deferred if a.due is not None)
    ui.waiting(due, len(deferred))
    # The program's clock: tests move it by hand; Ctrl-C (request.stop) ends the wait at once.
    return clock.CLOCK.sleep((due - clock.now()).total_seconds(), request.stop)


def guards_for(campaign: Campaign, max_sends: int | None, max_pages: int | None) -> Guards:
    """The budget guards: the command line's where given, else the manifest's ``budget:``."""
    budget = campaign.loaded.model.budget
    return Guards(
        max_sends=max_sends if max_sends is not None else budget.max_sends,
        max_pages=max_pages if max_pages is not None else budget.max_pages,
        max_cost=budget.max_cost,
    )


def resend_numbers(campaign: Campaign, numbers: Sequence[str], reason: str | None) -> dict[str, str]:
    """``--resend`` numbers in E.164, each checked against the campaign (suppression is never overridden)."""
    from faxops.recipients import normalise

    if not numbers:
        return {}
    if not reason or not reason.strip():
        raise InputError("--resend needs --reason TEXT: a forced resend is recorded with why it was needed")
    out = {}
    for text in numbers:
        number, why = normalise(text, campaign.loaded.model.recipients.default_region)
        if number is None:
            raise InputError(f"--resend {text}: {why}")
        if number in campaign.suppressed:
            raise InputError(
                f"--resend {number}: the number is suppressed ({campaign.suppressed[number]}); "
                "suppression is never overridden, nothing was sent"
            )
        out[number] = reason.strip()
    return out


def refuse_deferred_resends(campaign: Campaign, plan: Plan, state: RecordedState, resend: Mapping[str, str]) -> None:
    """A ``--resend`` that cannot go now is an error saying why and when, before anything is sent.

    Without it, apply printed "No changes" and exited 0: the operator believed the fax had gone.
    """
    from faxops.clock import parse_iso

    min_gap = campaign.rules().policy.min_gap
    lines = []
    for action in plan.groups[Action.DEFER]:
        if action.number not in resend or action.due is None:
            continue
        summary = state.summaries.get(action.number)
        last = parse_iso(summary.updated_at) if summary is not None else None
        when = f"{action.due.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
        if last is not None and action.due <= last + min_gap:
            why = f"its last attempt was at {last.astimezone(UTC):%H:%M:%S}Z and retry.min_gap ({min_gap}) allows "
            lines.append(f"--resend {action.number}: not sent: {why}the next attempt at {when}")
        else:
            lines.append(f"--resend {action.number}: not sent: outside its send window, which opens at {when}")
    if lines:
        raise InputError(
            "; ".join(lines) + ". Nothing was sent.",
            hint="run the same command again then, or add --wait to wait for it",
        )
