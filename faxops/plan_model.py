"""The plan's data: one action per recipient, grouped, and the rules that decide them (``faxops.plan``).

Kept apart from the planner so that readers of a plan (output, reports, ``apply PLANFILE``) and the
planner's algorithm can each be read alone; ``faxops.plan`` re-exports every name here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import orjson

from faxops import clock
from faxops.clock import iso
from faxops.domain import Recipient
from faxops.plan_groups import UnchangedGroup
from faxops.schedule import Estimate, RetryPolicy, Schedule

PLAN_FORMAT_VERSION = 1


class Action(enum.StrEnum):
    SEND = "send"
    RETRY = "retry"
    UNKNOWN = "unknown"
    DEFER = "deferred"
    UNCHANGED = "unchanged"
    SKIP = "skip"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.SEND: "+",
    Action.RETRY: "~",
    Action.UNKNOWN: "?",
    Action.DEFER: "…",
    Action.UNCHANGED: "=",
    Action.SKIP: "!",
}


@dataclass(slots=True)  # not frozen: one per recipient, and frozen dataclasses are 4x slower to build
class PlannedAction:
    """What will happen to one recipient, and why."""

    action: Action
    number: str  # E.164, or the text as written for an invalid number
    recipient: Recipient | None = None  # for send and retry
    attempt: int | None = None  # the attempt a send/retry will be
    reason: str | None = None
    source: str | None = None
    status: str | None = None  # the recorded status, where there is one
    reference: str | None = None  # of an attempt whose outcome is unknown
    due: datetime | None = None  # when a deferred recipient becomes due
    zone: str | None = None  # the recipient's time zone(s), where windows apply
    forced: str | None = None  # ``apply --resend`` reason
    name: str | None = None  # the recipient's name, kept only for reports (``make_plan(names=True)``)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": str(self.action), "number": self.number}
        if self.recipient is not None and self.recipient.name:
            out["name"] = self.recipient.name
        for key in ("attempt", "status", "reason", "source", "reference", "zone", "forced"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.due is not None:
            out["due"] = iso(self.due)
        return out


def _unchanged(number: str, source: str, status: str, name: str | None) -> PlannedAction:
    """The action of a settled recipient, as ``UnchangedGroup`` builds it when it is read."""
    return PlannedAction(Action.UNCHANGED, number, None, None, None, source, status, name=name)


Group = list[PlannedAction] | UnchangedGroup[PlannedAction]


def _groups() -> dict[Action, Group]:
    return {a: UnchangedGroup(_unchanged) if a == Action.UNCHANGED else [] for a in Action}


@dataclass(frozen=True, slots=True)
class Duplicate:
    number: str
    source: str
    first_source: str


@dataclass
class Plan:
    """The actions, grouped, with what the reader of a plan needs to judge it."""

    campaign: str
    # Unchanged actions are an ``UnchangedGroup``: built only when read (a warm plan only counts them).
    groups: dict[Action, Group] = field(default_factory=_groups)
    pages_per_fax: int | None = 0
    unknown_page_documents: int = 0
    duplicates: int = 0
    duplicate_samples: list[Duplicate] = field(default_factory=list)
    not_in_manifest: int = 0  # recorded numbers the manifest no longer lists (left alone)
    now: datetime | None = None
    expired: list[str] = field(default_factory=list)  # never-sent numbers past the campaign's expiry
    cost: float = 0.0  # estimated cost of this run's sends
    cost_all: float = 0.0  # ... and of every recipient still to send (deferred included)
    currency: str | None = None
    estimate: Estimate | None = None
    campaign_stop: str | None = None  # a failure that is not the recipient's (document, account)
    names: bool = False  # every action carries its recipient's name (a report's plan)

    def count(self, action: Action) -> int:
        return len(self.groups[action])

    @property
    def to_submit(self) -> list[PlannedAction]:
        return [*self.groups[Action.SEND], *self.groups[Action.RETRY]]

    @property
    def has_changes(self) -> bool:
        return bool(self.groups[Action.SEND] or self.groups[Action.RETRY] or self.groups[Action.UNKNOWN])

    @property
    def pages(self) -> int:
        return (self.pages_per_fax or 0) * (self.count(Action.SEND) + self.count(Action.RETRY))

    def summary(self) -> dict[str, int]:
        return {
            "send": self.count(Action.SEND),
            "retry": self.count(Action.RETRY),
            "unknown": self.count(Action.UNKNOWN),
            "unchanged": self.count(Action.UNCHANGED),
            "skip": self.count(Action.SKIP),
            "deferred": self.count(Action.DEFER),
            "pages": self.pages,
            "duplicates": self.duplicates,
        }

    def submit_key(self) -> list[tuple[str, str, int | None]]:
        """What ``apply`` of a saved plan must reproduce exactly."""
        return [(str(a.action), a.number, a.attempt) for a in self.to_submit]


@dataclass(frozen=True)
class Rules:
    """Everything besides the recipients and the state that decides a plan."""

    now: datetime = field(default_factory=clock.now)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    schedule: Schedule = field(default_factory=Schedule)
    resend: Mapping[str, str] = field(default_factory=dict)  # number -> why (``apply --resend``)
    per_page: Mapping[str, float] = field(default_factory=dict)  # region (or '*') -> price
    currency: str | None = None
    per_minute: float | None = None  # the pace, for the duration estimate
    provider_side: bool = False  # hand deferred recipients over now, with their start time


@dataclass(frozen=True)
class Guards:
    """Budget guards: a run that would exceed one is refused before anything is sent."""

    max_sends: int | None = None
    max_pages: int | None = None
    max_cost: float | None = None


def guard_problems(plan: Plan, guards: Guards, *, include_deferred: bool = False) -> list[str]:
    sends = len(plan.to_submit) + (plan.count(Action.DEFER) if include_deferred else 0)
    pages = (plan.pages_per_fax or 0) * sends
    cost = plan.cost_all if include_deferred else plan.cost
    problems = []
    if guards.max_sends is not None and sends > guards.max_sends:
        problems.append(f"{sends} fax(es) to send, over the limit of {guards.max_sends} (max_sends)")
    if guards.max_pages is not None and pages > guards.max_pages:
        problems.append(f"{pages} page(s) to send, over the limit of {guards.max_pages} (max_pages)")
    if guards.max_cost is not None and cost > guards.max_cost:
        problems.append(
            f"an estimated {cost:,.2f} {plan.currency or ''} to spend, over the limit of {guards.max_cost:,.2f} "
            "(max_cost)".replace("  ", " ")
        )
    return problems


def plan_json(plan: Plan, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``--json`` / saved-plan document."""
    doc = _plan_head(plan, extra)
    doc["actions"] = [a.to_json() for action in Action for a in plan.groups[action]]
    return doc


def _plan_head(plan: Plan, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plan document without its actions."""
    doc: dict[str, Any] = {
        "format_version": PLAN_FORMAT_VERSION,
        "campaign": plan.campaign,
        "summary": plan.summary(),
    }
    if plan.now is not None:
        doc["at"] = iso(plan.now)
    if plan.currency and (plan.cost or plan.cost_all):
        doc["cost"] = {"currency": plan.currency, "this_run": round(plan.cost, 2), "all": round(plan.cost_all, 2)}
    if plan.estimate is not None:
        doc["estimate"] = {
            "finish": iso(plan.estimate.finish) if plan.estimate.finish else None,
            "per_minute": plan.estimate.per_minute,
            "unreachable": plan.estimate.unreachable,
        }
    if plan.campaign_stop:
        doc["campaign_stop"] = plan.campaign_stop
    if extra:
        doc.update(extra)
    return doc


def plan_json_bytes(plan: Plan, *, batch: int = 10_000) -> Iterator[bytes]:
    """``orjson.dumps(plan_json(plan), option=OPT_SORT_KEYS)``, byte for byte, in pieces of ``batch`` actions.

    apply hashes this form of the plan for its receipt. Built whole, a plan of a million actions is a list
    of a million dictionaries and ~300 MB of JSON at once: that was apply's peak memory, over 1 GiB. With
    keys sorted, ``actions`` is the document's first key, so the actions can be written first, a batch at a
    time, and the rest of the document (never empty: it has ``campaign``) after them.
    """
    head = _plan_head(plan, None)
    assert min(head) > "actions", "a key sorted before the actions: write them in their place"
    yield b'{"actions":['
    actions = (a for action in Action for a in plan.groups[action])
    first = True
    while piece := list(islice(actions, batch)):
        encoded = b",".join(orjson.dumps(a.to_json(), option=orjson.OPT_SORT_KEYS) for a in piece)
        yield encoded if first else b"," + encoded
        first = False
    yield b"]," + orjson.dumps(head, option=orjson.OPT_SORT_KEYS)[1:]
