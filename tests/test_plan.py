"""The pure planner: golden cases of (recipients, state) -> actions."""

from __future__ import annotations

from faxops.domain import Invalid, Recipient, Status
from faxops.plan import Action, Rules, make_plan, plan_json
from faxops.state.records import Summary


def _r(number: str, source: str = "l.csv:2") -> Recipient:
    return Recipient(number, name=None, source=source)


def test_golden_actions() -> None:
    state = {
        "+2": Summary(Status.DELIVERED, 1),
        "+3": Summary(Status.FAILED, 1, retryable=True, reason="line busy"),
        "+4": Summary(Status.FAILED, 3, retryable=True, reason="line busy"),
        "+5": Summary(Status.FAILED, 1, retryable=False, reason="number not allocated"),
        "+6": Summary(Status.PENDING, 1, reference="fx-a"),
        "+7": Summary(Status.QUEUED, 1),
        "+8": Summary(Status.NOT_SENT, 0),
        "+9": Summary(Status.FAILED, 1, retryable=True, reason="busy"),
        "+99": Summary(Status.DELIVERED, 1),  # no longer in the manifest
    }
    candidates: list[Recipient | Invalid] = [
        _r("+1"),
        _r("+2"),
        _r("+3"),
        _r("+4"),
        _r("+5"),
        _r("+6"),
        _r("+7"),
        _r("+8"),
        _r("+9"),
        Invalid("12", "l.csv:11", "too short"),
        _r("+1", "l.csv:12"),
    ]
    plan = make_plan("c", candidates, state, suppressed={"+9": "opted out"}, rules=Rules(), pages_per_fax=2)
    got = {a.number: (a.action, a.attempt) for g in plan.groups.values() for a in g}
    assert got == {
        "+1": (Action.SEND, 1),
        "+2": (Action.UNCHANGED, None),
        "+3": (Action.RETRY, 2),
        "+4": (Action.SKIP, None),
        "+5": (Action.SKIP, None),
        "+6": (Action.UNKNOWN, 1),
        "+7": (Action.UNCHANGED, None),
        "+8": (Action.SEND, 1),
        "+9": (Action.SKIP, None),  # suppression wins over a due retry
        "12": (Action.SKIP, None),
    }
    assert plan.summary() == {
        "send": 2,
        "retry": 1,
        "unknown": 1,
        "unchanged": 2,
        "skip": 4,
        "deferred": 0,
        "pages": 6,
        "duplicates": 1,
    }
    assert plan.duplicate_samples[0].first_source == "l.csv:2"
    assert plan.not_in_manifest == 1
    reasons = {a.number: a.reason for a in plan.groups[Action.SKIP]}
    assert reasons["+4"] is not None
    assert "out of attempts (3 of 3 for busy)" in reasons["+4"]
    assert reasons["+5"] is not None
    assert "invalid_number" in reasons["+5"]
    assert "never retried" in reasons["+5"]
    assert reasons["+9"] == "suppressed: opted out"
    assert plan.has_changes


def test_plan_json_shape_and_determinism() -> None:
    def build() -> dict[str, object]:
        return plan_json(make_plan("c", [_r("+1"), _r("+2")], {"+2": Summary(Status.DELIVERED, 1)}))

    doc = build()
    del doc["at"]
    again = build()
    del again["at"]
    assert doc == again
    assert doc["format_version"] == 1
    assert doc["actions"] == [
        {"action": "send", "number": "+1", "attempt": 1, "source": "l.csv:2"},
        {"action": "unchanged", "number": "+2", "status": "delivered", "source": "l.csv:2"},
    ]


def test_nothing_to_do() -> None:
    plan = make_plan("c", [_r("+1")], {"+1": Summary(Status.DELIVERED, 1)})
    assert not plan.has_changes
    assert plan.to_submit == []
