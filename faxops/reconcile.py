"""Reconcile sends whose outcome is unknown: ask the provider, never resend blindly.

An intent without an answer means the process died (or the connection dropped) after the request may
have left. For each such job the provider is asked by our client reference: found -> the job ID is
recorded; proven absent -> the attempt is marked not sent, so the next plan sends it; the provider
cannot tell -> the recipients are held until a person runs ``faxops resolve``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from faxops.campaign import Campaign
from faxops.clock import parse_iso
from faxops.domain import Recipient, Status, Submission
from faxops.errors import ProviderError
from faxops.state import RecordedState, StateWriter, events


@dataclass(frozen=True)
class Held:
    numbers: tuple[str, ...]
    reference: str
    evidence: str


@dataclass
class ReconcileReport:
    found: int = 0
    not_sent: int = 0
    held: list[Held] = field(default_factory=list)

    @property
    def held_count(self) -> int:
        return sum(len(h.numbers) for h in self.held)


def reconcile(campaign: Campaign, writer: StateWriter, state: RecordedState) -> ReconcileReport:
    """Settle every pending attempt that the provider can account for; hold the rest."""
    report = ReconcileReport()
    by_reference: dict[tuple[str, str], list[str]] = {}
    started: dict[str, datetime] = {}
    for number, summary in state.summaries.items():
        if summary.status == Status.PENDING and summary.reference:
            by_reference.setdefault((summary.reference, summary.provider or ""), []).append(number)
            moment = parse_iso(summary.updated_at)
            if moment is not None:
                # A job scheduled on the provider's side cannot have finished before it started.
                started[summary.reference] = max(moment, parse_iso(summary.send_at) or moment)
    provider = campaign.provider
    for (reference, provider_name), numbers in sorted(by_reference.items()):
        numbers.sort()
        # Another provider's job cannot be looked up here, and "not found" would wrongly allow a resend.
        if provider_name != provider.name:
            report.held.append(
                Held(
                    tuple(numbers),
                    reference,
                    f"sent through {provider_name}, but the manifest now uses {provider.name}",
                )
            )
            continue
        submission = Submission(
            reference, [Recipient(n) for n in numbers], campaign.documents, campaign.sender, campaign.name
        )
        try:
            lookup = provider.find(submission, started.get(reference))
        except ProviderError as exc:
            report.held.append(Held(tuple(numbers), reference, f"lookup failed: {exc.describe()}"))
            continue
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            # An answer of a shape the adapter did not expect decides nothing: holding the job can never
            # fax anyone twice, while a crash here would leave every other unknown send unreconciled.
            evidence = f"{provider.name} answered in a shape faxops cannot read ({type(exc).__name__}: {exc})"
            report.held.append(Held(tuple(numbers), reference, evidence))
            continue
        if not lookup.decided:
            report.held.append(Held(tuple(numbers), reference, lookup.evidence or f"{provider.name} cannot look it up"))
        elif lookup.found:
            for receipt in lookup.found:
                writer.record(events.receipt("found", reference, numbers, receipt, evidence=lookup.evidence))
            report.found += len(numbers)
        else:
            reason = f"reconciled: not found at {provider.name} ({lookup.evidence})"
            writer.record(events.outcome("not_sent", reference, numbers, reason))
            report.not_sent += len(numbers)
    return report
