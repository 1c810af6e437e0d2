"""Delivery tracking: ask the provider about every recipient not yet final, and cancel queued faxes.

Both run under the state lock and record what they learn as journal ``status`` events, which are
idempotent and monotonic (``faxops.state.records``): polling twice, or a push arriving after a poll,
never moves a recipient backwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from pathlib import Path

import orjson

from faxops import clock
from faxops.campaign import Campaign
from faxops.clock import iso, parse_iso
from faxops.domain import Status, StatusUpdate
from faxops.errors import AuthError, ProviderError, TransientError
from faxops.providers.base import JobRef
from faxops.state import RecordedState, StateWriter, events
from faxops.state.events import updates_json
from faxops.state.files import atomic_write
from faxops.state.records import Record
from faxops.webhook import ingest

_OPEN = frozenset({Status.QUEUED, Status.SENDING})
# The same by text: a ``Status`` hashes in Python, its ``_value_`` (a str) in C.
_OPEN_TEXT = frozenset(status.value for status in _OPEN)
_STATUS_TEXT = attrgetter("status._value_")
NOT_REPORTED = "accepted; delivery not reported by this provider"


@dataclass
class TrackedJob:
    """A provider job with the recipients of it that are not final yet."""

    job_id: str
    reference: str | None
    numbers: list[str] = field(default_factory=list)
    recipient_ids: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # number -> our attempt reference
    statuses: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # number -> (status, raw)

    def ref(self) -> JobRef:
        return JobRef(self.job_id, list(self.numbers), self.reference, dict(self.recipient_ids))


@dataclass
class RefreshReport:
    jobs: int = 0  # jobs asked about
    open: int = 0  # recipients not final before the refresh
    changed: int = 0  # recipients whose status moved
    became_final: int = 0
    skipped: str | None = None  # why nothing was polled
    stopped: str | None = None  # why polling stopped early (rate limit, credentials)
    not_reported: int = 0  # accepted by a provider that reports no delivery status
    pushed: int = 0  # status pushes taken in from the webhook inbox
    # Kept as the exception itself, so that the CLI's exit code follows its type and not the wording.
    refused: AuthError | None = None


def needs_refresh(campaign: Campaign, state: RecordedState) -> bool:
    """Whether asking the provider (or reading the webhook inbox) could change what is recorded."""
    inbox = campaign.store.push_inbox()
    try:
        if inbox.waiting():
            return True
    finally:
        inbox.close()
    # A C-level pass that stops at the first open recipient (a generator over a million summaries took 0.15 s).
    return campaign.provider.reports_status and not _OPEN_TEXT.isdisjoint(map(_STATUS_TEXT, state.summaries.values()))


def open_jobs(records: Iterable[tuple[str, Record]], numbers: set[str] | None = None) -> Iterator[TrackedJob]:
    """Jobs with recipients whose latest attempt is queued or sending, in lockfile order."""
    jobs: dict[str, TrackedJob] = {}
    for number, record in records:
        if numbers is not None and number not in numbers:
            continue
        if record.get("status") not in _OPEN:
            continue
        attempt = record["attempts"][-1]
        job_id = attempt.get("job_id")
        if not job_id:
            continue
        job = jobs.get(job_id)
        if job is None:
            job = jobs[job_id] = TrackedJob(str(job_id), attempt.get("reference"))
        job.numbers.append(number)
        job.refs[number] = attempt["reference"]
        job.statuses[number] = (str(attempt.get("status")), attempt.get("raw_status"))
        if attempt.get("recipient_id"):
            job.recipient_ids[number] = attempt["recipient_id"]
    yield from jobs.values()


def _poll_file(campaign: Campaign) -> Path:
    return campaign.paths.poll_marker


def _last_poll(campaign: Campaign) -> datetime | None:
    try:
        data = orjson.loads(_poll_file(campaign).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return parse_iso(data.get("at")) if isinstance(data, dict) else None


def record_updates(writer: StateWriter, job: TrackedJob, updates: Iterable[StatusUpdate]) -> tuple[int, int]:
    """Journal the updates that say something new; (changed, became final)."""
    changed = final = 0
    for item in updates_json([u for u in updates if u.number in job.refs]):
        number = str(item["number"])
        before = job.statuses.get(number)
        status = Status(str(item["status"]))
        unchanged = before is not None and before == (str(status), item.get("raw"))
        if unchanged and "provider_id" not in item:
            continue
        if before is not None and Status(before[0]).rank > status.rank:
            continue  # stale: never backwards
        writer.record(events.status(job.refs[number], item))
        job.statuses[number] = (str(status), item.get("raw"))  # type: ignore[assignment]
        changed += 1
        final += status.final
    return changed, final


def refresh(
    campaign: Campaign,
    writer: StateWriter,
    *,
    force: bool = False,
    stop: threading.Event | None = None,
) -> RefreshReport:
    """Poll the provider for every recipient not final yet and journal what changed."""
    report = RefreshReport()
    # Pushes first: they are newer than anything a poll of the same job could say, and cost no API call.
    report.pushed = ingest(campaign.store, writer)
    provider = campaign.provider
    jobs = list(open_jobs(campaign.store.records()))
    report.open = sum(len(j.numbers) for j in jobs)
    if not jobs:
        return report
    if not provider.reports_status:
        report.not_reported = report.open
        report.skipped = f"{provider.name}: {NOT_REPORTED}"
        return report
    now = clock.now()
    last = _last_poll(campaign)
    interval = timedelta(seconds=provider.min_poll_interval)
    # Providers that ask for a minimum interval (Retarus' reports) throttle or block clients that poll faster.
    if not force and last is not None and interval and now < last + interval:
        report.skipped = (
            f"{provider.name} asks for at most one status poll per {int(interval.total_seconds() // 60)} min; "
            f"the next is due at {iso(last + interval)} (--force polls anyway)"
        )
        return report
    try:
        for job in jobs:
            if stop is not None and stop.is_set():
                report.stopped = "interrupted"
                break
            try:
                updates = provider.status(job.ref())
            except TransientError as exc:
                when = f"; try again after {exc.retry_after:.0f}s" if exc.retry_after else ""
                report.stopped = f"{provider.name} is limiting or unavailable: {exc.describe()}{when}"
                break
            except AuthError as exc:
                report.stopped = f"credentials refused: {exc.describe()}"
                report.refused = exc
                break
            except ProviderError as exc:
                report.stopped = f"status of job {job.job_id} failed: {exc.describe()}"
                break
            report.jobs += 1
            changed, final = record_updates(writer, job, updates)
            report.changed += changed
            report.became_final += final
    finally:
        # Recorded even when polling stopped early: the calls made count against the provider's interval.
        if report.jobs:
            path = _poll_file(campaign)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, [orjson.dumps({"at": iso(now), "provider": provider.name})])
    return report


@dataclass
class CancelReport:
    canceled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "number: why"
    not_open: list[str] = field(default_factory=list)  # asked for, but not queued


def cancel(campaign: Campaign, writer: StateWriter, numbers: set[str] | None) -> CancelReport:
    """Cancel queued faxes (all, or ``numbers``) where the provider can; record each outcome."""
    provider = campaign.provider
    report = CancelReport()
    if not provider.can_cancel:
        raise ProviderError(f"{provider.name} cannot cancel faxes through its API", provider=provider.name)
    everything = list(open_jobs(campaign.store.records()))
    jobs = [j for j in everything if numbers is None or set(j.numbers) & numbers]
    found = {n for j in jobs for n in j.numbers if numbers is None or n in numbers}
    report.not_open = sorted((numbers or set()) - found)
    for job in jobs:
        others = sorted(set(job.numbers) - (numbers if numbers is not None else set(job.numbers)))
        if others and provider.cancels_whole_job:
            report.failed.extend(
                f"{n}: {provider.name} cancels the whole job {job.job_id}, which also holds {', '.join(others)}; "
                "name them too (or use --all)"
                for n in sorted(set(job.numbers) - set(others))
            )
            continue
        if not provider.cancels_whole_job:
            job.numbers = [n for n in job.numbers if numbers is None or n in numbers]
        try:
            updates = provider.cancel(job.ref())
        except ProviderError as exc:
            report.failed.extend(f"{n}: {exc.describe()}" for n in job.numbers)
            continue
        record_updates(writer, job, updates)
        report.canceled.extend(u.number for u in updates if u.status == Status.CANCELED)
    return report
