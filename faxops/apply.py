"""Execute a plan: the only caller of providers, recording every step as it happens.

For each provider job the order is fixed, because it is what makes a crash harmless:

1. journal the intent (recipients, attempt, client reference) and wait until it is on disk;
2. call the provider;
3. journal its answer (job ID, rejection, or "unknown") as soon as it arrives.

A process killed between 1 and 3 leaves an intent without an answer: the next run reconciles it with
the provider by its reference (``faxops.reconcile``) instead of sending it again.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from faxops.campaign import Campaign
from faxops.domain import Recipient, Submission, classify
from faxops.errors import (
    AuthError,
    JournalWriteError,
    OutcomeUnknownError,
    ProviderError,
    RejectedError,
    TransientError,
)
from faxops.pace import Pace
from faxops.plan import Plan, PlannedAction
from faxops.schedule import CAMPAIGN_FAILURES
from faxops.state import StateWriter, events
from faxops.state.journal import rescue
from faxops.state.records import Event

#: consecutive provider-unavailable answers after which the run stops instead of hammering it
_MAX_CONSECUTIVE_TRANSIENT = 5


def client_reference(
    campaign: str, numbers: Sequence[str], document_digests: Sequence[str], attempts: Sequence[int]
) -> str:
    """A reference that is the same whenever the same job is tried again after a crash."""
    digest = hashlib.sha256()
    for part in (campaign, *numbers, "|", *document_digests, "|", *map(str, attempts)):
        digest.update(part.encode())
        digest.update(b"\x00")
    return f"fx-{campaign[:24]}-{digest.hexdigest()[:20]}"


@dataclass(frozen=True, slots=True)
class JobResult:
    """What happened to one provider job in this run."""

    numbers: tuple[str, ...]
    reference: str
    outcome: str  # accepted | rejected | not_sent | unknown
    job_id: str | None = None
    detail: str | None = None
    delivered: int = 0
    failed: int = 0


@dataclass
class ApplyReport:
    """The run's totals, per recipient."""

    submitted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (auth, interrupt, journal)
    rescued: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def merge(self, other: ApplyReport) -> None:
        """Add another round's totals (``apply --wait`` sends in rounds)."""
        self.submitted += other.submitted
        self.outcomes.update(other.outcomes)
        self.delivered += other.delivered
        self.failed += other.failed
        self.errors.extend(other.errors)
        self.stopped = self.stopped or other.stopped
        self.rescued.extend(other.rescued)
        self.elapsed += other.elapsed


@dataclass
class ApplyOptions:
    """How one round sends: its pace (None: the campaign's), a stop event, a callback per job."""

    pace: Pace | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    on_result: Callable[[JobResult], None] | None = None


def batches(campaign: Campaign, actions: Sequence[PlannedAction], size: int) -> Iterator[Submission]:
    """Group the plan's sends into provider jobs, each with its deterministic reference.

    A job holds recipients with the same provider-side start time and the same forced/normal kind, so
    that what the intent records is true of every recipient in it.
    """
    digests = [d.sha256 for d in campaign.documents]
    for _, group in itertools.groupby(actions, key=lambda a: (a.due, a.forced)):
        chunk_source = list(group)
        for start in range(0, len(chunk_source), size):
            chunk = chunk_source[start : start + size]
            recipients: list[Recipient] = [a.recipient for a in chunk if a.recipient is not None]
            numbers = [r.number for r in recipients]
            attempts = [a.attempt or 1 for a in chunk]
            yield Submission(
                reference=client_reference(campaign.name, numbers, digests, attempts),
                recipients=recipients,
                documents=campaign.documents,
                sender=campaign.sender,
                campaign=campaign.name,
                send_at=chunk[0].due,
            )


class _Run:
    """One round of sending: the workers share this object, so every counter is under ``_lock``."""

    def __init__(
        self, campaign: Campaign, writer: StateWriter, options: ApplyOptions, forced: Mapping[str, str]
    ) -> None:
        self.forced = forced
        self.campaign = campaign
        self.provider = campaign.provider
        self.writer = writer
        self.options = options
        self.report = ApplyReport()
        self._lock = threading.Lock()
        self._consecutive_transient = 0

    def stop(self, why: str) -> None:
        """Stop starting new jobs; the ones in flight finish and are recorded. The first reason wins."""
        with self._lock:
            if self.report.stopped is None:
                self.report.stopped = why
        self.options.stop.set()

    def one(self, submission: Submission) -> JobResult:
        """Journal the intent, call the provider, journal its answer: in this order, always."""
        numbers = tuple(r.number for r in submission.recipients)
        ref = submission.reference
        # Checked again here: jobs queued before a stop must not start after it.
        if self.options.stop.is_set():
            return JobResult(numbers, ref, "skipped")
        try:
            # A job holds forced or normal recipients only (see ``batches``): the first speaks for all.
            forced = self.forced.get(numbers[0]) if numbers else None
            self.writer.record(
                events.intent(ref, numbers, self.provider.name, forced=forced, send_at=submission.send_at)
            )
        except JournalWriteError as exc:
            # No durable intent, no call: a send we could not record is a send we might repeat.
            self.stop(f"the journal cannot be written ({exc.message}); nothing more was sent")
            return JobResult(numbers, ref, "skipped", detail=exc.message)
        try:
            receipt = self.provider.submit(submission)
        except RejectedError as exc:
            failure = classify(exc.code, exc.message, exc.retryable)
            if failure in CAMPAIGN_FAILURES:
                # Not this recipient's problem: every further send would fail the same way.
                self.stop(f"the provider refused the campaign ({failure}): {exc.describe()}")
            event = events.rejected(
                ref, numbers, code=exc.code, message=exc.message, retryable=exc.retryable, failure=str(failure)
            )
            return self._answer(event, exc.describe())
        except AuthError as exc:
            # Refused credentials refuse every job: stop rather than charge each recipient an attempt.
            self.stop(f"the account or configuration was refused: {exc.describe()}")
            return self._answer(events.outcome("not_sent", ref, numbers, exc.describe()), exc.describe())
        except TransientError as exc:
            # Certainly not sent, so "not sent" (retried later); a run of them means the provider is down.
            with self._lock:
                self._consecutive_transient += 1
                too_many = self._consecutive_transient >= _MAX_CONSECUTIVE_TRANSIENT
            if too_many:
                self.stop(f"the provider keeps failing: {exc.describe()}")
            return self._answer(events.outcome("not_sent", ref, numbers, exc.describe()), exc.describe())
        except OutcomeUnknownError as exc:
            # The request may have arrived: held as unknown until reconcile asks the provider.
            return self._answer(events.outcome("unknown", ref, numbers, exc.describe()), exc.describe())
        except ProviderError as exc:  # a provider that raised the base class: be safe, not sorry
            return self._answer(events.outcome("unknown", ref, numbers, exc.describe()), exc.describe())
        except Exception as exc:  # a bug in a provider must not lose the intent's meaning
            detail = f"{type(exc).__name__}: {exc}"
            return self._answer(events.outcome("unknown", ref, numbers, f"provider crashed: {detail}"), detail)
        with self._lock:
            self._consecutive_transient = 0  # only consecutive failures mean the provider is down
        event = events.receipt("accepted", ref, numbers, receipt)
        delivered = sum(1 for u in receipt.updates if u.status == "delivered")
        failed = sum(1 for u in receipt.updates if u.status == "failed")
        self._record_answer(event)
        return JobResult(numbers, ref, "accepted", receipt.job_id, delivered=delivered, failed=failed)

    def _answer(self, event: Event, detail: str) -> JobResult:
        """Record a provider's refusal or failure (built by ``faxops.state.events``) as this job's result."""
        self._record_answer(event)
        return JobResult(tuple(event["numbers"]), event["ref"], event["t"], detail=detail)

    def _record_answer(self, event: Event) -> None:
        try:
            self.writer.record(event)
        except JournalWriteError as exc:
            # The fax was sent (or refused) and its job ID exists only in memory: losing it would let the
            # next run resend. Put it anywhere that takes it, and stop sending.
            where = rescue(self.campaign.name, [event], self.campaign.paths.rescue)
            with self._lock:
                self.report.rescued.append(str(where) if where else "stderr")
            self.stop(
                f"the journal cannot be written ({exc.message}); the provider's answer was saved to {where or 'stderr'}"
            )

    def account(self, result: JobResult) -> None:
        """Add one job's result to the round's totals (called from the submitting thread only)."""
        if result.outcome == "skipped":  # never started: not a submission
            return
        report = self.report
        report.submitted += len(result.numbers)
        report.outcomes[result.outcome] += len(result.numbers)
        report.delivered += result.delivered
        report.failed += result.failed
        if result.outcome in ("rejected", "not_sent", "unknown") and result.detail:
            report.errors.append(f"{', '.join(result.numbers)}: {result.detail}")
        if self.options.on_result is not None:
            self.options.on_result(result)


def record_expired(writer: StateWriter, numbers: Sequence[str]) -> None:
    """Mark never-sent recipients of an expired campaign, so that reports and status say so."""
    for start in range(0, len(numbers), 10_000):
        writer.record(events.expire(numbers[start : start + 10_000]))


def execute(campaign: Campaign, plan: Plan, writer: StateWriter, options: ApplyOptions) -> ApplyReport:
    """Submit the plan's sends and retries with bounded concurrency. Stops early on ``options.stop``."""
    forced = {a.number: a.forced for a in plan.to_submit if a.forced}
    run = _Run(campaign, writer, options, forced)
    started = time.monotonic()
    pace = options.pace or campaign.pace()
    # Twice the workers in flight keeps every worker busy without reading the whole plan into futures.
    window = max(1, pace.concurrency) * 2
    limiter = pace.limiter()
    actions = plan.to_submit
    if any(a.due is not None for a in actions):
        actions = sorted(actions, key=lambda a: (a.due is not None, a.due or plan.now))
    jobs = batches(campaign, actions, pace.batch_size)
    with ThreadPoolExecutor(max_workers=max(1, pace.concurrency), thread_name_prefix="faxops-send") as pool:
        in_flight: set[Future[JobResult]] = set()
        for submission in jobs:
            if options.stop.is_set():
                break
            if not limiter.wait(len(submission.recipients), options.stop):
                break
            in_flight.add(pool.submit(run.one, submission))
            if len(in_flight) >= window:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    run.account(future.result())
        for future in in_flight:
            run.account(future.result())
    run.report.elapsed = time.monotonic() - started
    return run.report
