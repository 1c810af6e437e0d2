"""The built-in sandbox: a provider with no network and no credentials.

It "transmits" synchronously and deterministically: every number is delivered unless ``outcomes`` maps
a pattern matching it to another outcome. Each transmitted recipient becomes one JSON line in
``<record_dir>/sent.jsonl``, so anyone can count what was really sent. Lookup by reference reads that
file back, which makes crash recovery on the sandbox fully automatic.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import orjson
from pydantic import Field

from faxops import clock
from faxops.clock import iso
from faxops.domain import Receipt, Status, StatusUpdate, Submission
from faxops.errors import OutcomeUnknownError, RejectedError
from faxops.fields import Duration
from faxops.providers.base import Lookup, Provider, ProviderContext, ProviderSettings

Outcome = Literal["delivered", "busy", "no_answer", "not_fax", "invalid", "rejected", "timeout"]

#: outcome -> (status, raw status, reason, retryable)
_OUTCOMES: dict[str, tuple[Status, str, str | None, bool | None]] = {
    "delivered": (Status.DELIVERED, "OK", None, None),
    "busy": (Status.FAILED, "BUSY", "line busy", True),
    "no_answer": (Status.FAILED, "NO_ANSWER", "no answer", True),
    "not_fax": (Status.FAILED, "NOFAX", "answered by a voice line, not a fax machine", True),
    "invalid": (Status.FAILED, "INVALID_NUMBER", "number not allocated", False),
}


class SandboxSettings(ProviderSettings):
    """Settings of the built-in sandbox provider."""

    type: Literal["sandbox"] = "sandbox"
    outcomes: dict[str, Outcome] = Field(
        default_factory=dict,
        description=(
            "E.164 number patterns (shell-style, e.g. '+4930*') mapped to an outcome: delivered, busy, "
            "no_answer, not_fax, invalid (failures after transmission), rejected (refused at submit) or "
            "timeout (accepted, but the answer is lost, as after a network fault)."
        ),
    )
    latency: Duration = Field(default=timedelta(0), description="Time each submission takes, e.g. 200ms.")
    record_dir: str = Field(
        default=".faxops/sandbox",
        description="Where sent.jsonl is written, relative to the manifest.",
    )
    max_recipients_per_job: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="The most recipients one job may carry, as an API's limit would (schedule.batch_size picks "
        "the size within it; without batch_size the sandbox sends one recipient per job).",
    )


class SandboxProvider(Provider):
    """Deterministic local provider for demos, first steps and tests."""

    name = "sandbox"
    settings_model = SandboxSettings
    document_formats = frozenset({"pdf", "tiff", "jpeg", "png", "txt", "html", "doc", "docx", "xls", "xlsx"})
    reference_field = "reference"
    lookup = "reference"
    personalisation = True
    can_cancel = False
    prints_header = True
    # One recipient per job unless schedule.batch_size asks for more: each number's outcome (a simulated
    # timeout in particular) then stays its own, which is what demos and tests of one number expect.
    default_batch_size = 1

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, SandboxSettings)
        self.sandbox = settings
        self.record_dir = (context.base_dir / settings.record_dir).resolve()
        self.sent_log = self.record_dir / "sent.jsonl"
        self._write_lock = threading.Lock()
        self._fd: int | None = None

    def job_size(self) -> int:
        return self.sandbox.max_recipients_per_job

    def _outcome(self, number: str) -> str:
        for pattern, outcome in self.sandbox.outcomes.items():
            if fnmatch.fnmatchcase(number, pattern):
                return outcome
        return "delivered"

    def _append(self, lines: Sequence[bytes]) -> None:
        with self._write_lock:
            if self._fd is None:
                self.record_dir.mkdir(parents=True, exist_ok=True)
                # O_APPEND: apply's worker threads and a second process (a chaos test's next run) share the file, and
                # each write must land at its end. 0o600: the log holds recipients' numbers and names.
                self._fd = os.open(self.sent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            # One write() per job: a process killed mid-call leaves whole lines or none.
            os.write(self._fd, b"".join(lines))

    def submit(self, submission: Submission) -> Receipt:
        latency = self.sandbox.latency.total_seconds()
        if latency:
            # Real time, not the program's clock: latency stands for the network, and the crash tests
            # kill the process while a call is in flight.
            time.sleep(latency)
        outcomes = {r.number: self._outcome(r.number) for r in submission.recipients}
        # A refusal rejects the whole job before anything is recorded, as a real API's 4xx does: nothing was sent.
        refused = [n for n, o in outcomes.items() if o == "rejected"]
        if refused:
            raise RejectedError(
                f"recipient {refused[0]} refused by the sandbox's outcomes setting",
                provider=self.name,
                code="SANDBOX_REJECTED",
            )
        job_id = "sbx-" + uuid.uuid4().hex[:16]
        now = clock.now()
        pages = sum(d.pages or 0 for d in submission.documents) or None
        lines = []
        updates = []
        for recipient in submission.recipients:
            outcome = outcomes[recipient.number]
            record = {
                "at": iso(now),
                "campaign": submission.campaign,
                "job_id": job_id,
                "reference": submission.reference,
                "number": recipient.number,
                "name": recipient.name,
                "fields": dict(recipient.fields or {}),
                "documents": [d.sha256 for d in submission.documents],
                "pages": pages,
                "outcome": outcome,
            }
            lines.append(orjson.dumps(record) + b"\n")
            if outcome != "timeout":
                status, raw, reason, retryable = _OUTCOMES[outcome]
                updates.append(StatusUpdate(recipient.number, status, raw, reason, retryable, pages, now))
        # Recorded before the simulated timeout is raised: the fax "went out" and only the answer is lost, which is
        # exactly the case reconcile must find by reference instead of sending again.
        self._append(lines)
        if any(o == "timeout" for o in outcomes.values()):
            raise OutcomeUnknownError(
                "the sandbox accepted the job but its answer was lost (simulated timeout)",
                provider=self.name,
                code="SANDBOX_TIMEOUT",
            )
        return Receipt(job_id=job_id, updates=tuple(updates))

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        if not self.sent_log.exists():
            return Lookup(decided=True, evidence=f"{self.sent_log} does not exist")
        jobs: dict[str, list[StatusUpdate]] = {}
        with self.sent_log.open("rb") as fh:
            for raw_line in fh:
                # A byte search first: the log of a long run holds a million lines, and parsing each would make every
                # reconcile slow.
                if submission.reference.encode() not in raw_line:
                    continue
                try:
                    record = orjson.loads(raw_line)
                except orjson.JSONDecodeError:
                    continue
                if record.get("reference") != submission.reference:
                    continue
                outcome = record["outcome"]
                status, raw, reason, retryable = _OUTCOMES.get(outcome, _OUTCOMES["delivered"])
                jobs.setdefault(record["job_id"], []).append(
                    StatusUpdate(record["number"], status, raw, reason, retryable, record.get("pages"))
                )
        found = [Receipt(job_id=job, updates=tuple(updates)) for job, updates in jobs.items()]
        evidence = f"{len(found)} job(s) with reference {submission.reference} in {self.sent_log}"
        return Lookup(decided=True, found=found, evidence=evidence)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
