"""The columnar plan (unchanged rows held as columns, built when read) against the row-by-row planner.

The row-by-row path is what ``make_plan`` does with recipients given one by one; a chunk of a list file
is decided column by column. Both must give the same plan: JSON, saved plan, text, markdown, names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from faxops import planfile
from faxops.campaign import open_campaign
from faxops.chunks import Chunk
from faxops.clock import iso
from faxops.domain import Invalid, Recipient, Status
from faxops.output import Output
from faxops.plan import Action, Plan, Rules, make_plan, plan_json
from faxops.plan_groups import UnchangedGroup
from faxops.plan_model import plan_json_bytes
from faxops.recipients import NumberCache, iter_sources, resolve_sources
from faxops.render_markdown import render, view_of_plan
from faxops.state.records import Summary
from tests.conftest import CampaignDir

Make = Callable[..., CampaignDir]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _number(i: int) -> str:
    return f"+4930{20000000 + i}"


def _mixed(make_campaign: Make) -> tuple[CampaignDir, dict[str, Summary], dict[str, str]]:
    """120 rows: mostly delivered, with every other kind of action, duplicates and invalid numbers."""
    rows = [(f"+49 30 {20000000 + i}", f"Company {i}") for i in range(120)]
    rows[30] = ("030 20000007", "dup of row 7 (national form)")  # duplicate within the first chunks
    rows[95] = ("+49 30 20000003", "dup of row 3, much later")  # duplicate across chunks
    rows[50] = ("12", "bad number")
    rows[51] = ("", "no number")
    rows[110] = ("nonsense", "bad too")
    camp = make_campaign(rows)
    recent = iso(NOW - timedelta(minutes=1))
    state: dict[str, Summary] = {}
    for i in range(120):
        state[_number(i)] = Summary(Status.DELIVERED, 1)
    for i in (60, 61, 62):
        state[_number(i)] = Summary(Status.QUEUED, 1)
    state[_number(63)] = Summary(Status.SENDING, 2)
    for i in (5, 70):  # retries due now
        state[_number(i)] = Summary(
            Status.FAILED, 1, retryable=True, reason="busy", updated_at=iso(NOW - timedelta(days=1))
        )
    state[_number(71)] = Summary(Status.FAILED, 1, retryable=True, reason="busy", updated_at=recent)  # deferred
    state[_number(72)] = Summary(Status.FAILED, 1, retryable=False, reason="number not allocated")  # skip
    state[_number(73)] = Summary(Status.PENDING, 1, reference="fx-1")  # unknown
    for i in range(100, 108):
        del state[_number(i)]  # never sent: send
    state["+4930999"] = Summary(Status.DELIVERED, 1)  # no longer in the list
    suppressed = {_number(80): "opted out"}  # delivered and suppressed: skipped, not unchanged
    return camp, state, suppressed


def _chunks(camp: CampaignDir, size: int) -> list[Recipient | Invalid | Chunk]:
    loaded = open_campaign(camp.manifest).loaded
    return list(resolve_sources(iter_sources(loaded, chunk=size), NumberCache(None)))


def _one_by_one(chunks: Iterable[Recipient | Invalid | Chunk]) -> list[Recipient | Invalid]:
    return [item for c in chunks for item in (c.items() if isinstance(c, Chunk) else [c])]


def _plan(
    items: Iterable[Recipient | Invalid | Chunk], state: dict[str, Summary], suppressed: dict[str, str], **kw: object
) -> Plan:
    rules = Rules(now=NOW, resend=kw.pop("resend", {}))  # type: ignore[arg-type]
    return make_plan("c", items, state, suppressed=suppressed, rules=rules, pages_per_fax=1, **kw)  # type: ignore[arg-type]


def _text(plan: Plan, capsys: pytest.CaptureFixture[str], details: bool) -> str:
    Output(color=False).plan(plan, provider="sandbox", details=details)
    return capsys.readouterr().out


@pytest.mark.parametrize("size", [1, 7, 20, 1000])
def test_columnar_plan_is_the_row_by_row_plan(
    make_campaign: Make, capsys: pytest.CaptureFixture[str], tmp_path: Path, size: int
) -> None:
    camp, state, suppressed = _mixed(make_campaign)
    chunks = _chunks(camp, size)
    assert any(isinstance(c, Chunk) for c in chunks)
    columnar = _plan(chunks, state, suppressed)
    reference = _plan(_one_by_one(chunks), state, suppressed)
    assert isinstance(columnar.groups[Action.UNCHANGED], UnchangedGroup)

    assert columnar.summary() == reference.summary()
    assert {a: columnar.count(a) > 0 for a in Action} == {a: True for a in Action}  # every kind is there
    assert columnar.duplicates == reference.duplicates == 2
    assert columnar.duplicate_samples == reference.duplicate_samples
    assert columnar.not_in_manifest == reference.not_in_manifest == 6  # 5 rows overwritten above, +4930999
    assert plan_json(columnar) == plan_json(reference)
    dump = {"plan_path": tmp_path / "p.json", "manifest": camp.manifest, "inputs": {}, "state": {"serial": 1}}
    assert planfile.dump(columnar, **dump) == planfile.dump(reference, **dump)  # type: ignore[arg-type]
    for details in (False, True):
        assert _text(columnar, capsys, details) == _text(reference, capsys, details)
    assert render(view_of_plan(columnar)) == render(view_of_plan(reference))


def test_columnar_plan_keeps_names_for_a_report(make_campaign: Make) -> None:
    camp, state, suppressed = _mixed(make_campaign)
    chunks = _chunks(camp, 7)
    columnar = _plan(chunks, state, suppressed, names=True)
    reference = _plan(_one_by_one(chunks), state, suppressed, names=True)
    got = [(a.action, a.number, a.name, a.source, a.status) for g in columnar.groups.values() for a in g]
    assert got == [(a.action, a.number, a.name, a.source, a.status) for g in reference.groups.values() for a in g]
    assert ("Company 0", "recipients.csv:2") in [(a.name, a.source) for a in columnar.groups[Action.UNCHANGED]]


def test_forced_resend_of_a_delivered_row_leaves_the_columnar_path(make_campaign: Make) -> None:
    camp, state, suppressed = _mixed(make_campaign)
    chunks = _chunks(camp, 1000)
    resend = {_number(2): "the fax was illegible"}
    columnar = _plan(chunks, state, suppressed, resend=resend)
    reference = _plan(_one_by_one(chunks), state, suppressed, resend=resend)
    assert plan_json(columnar) == plan_json(reference)
    assert _number(2) in [a.number for a in columnar.groups[Action.RETRY]]


def test_unchanged_group_reads_like_a_list(make_campaign: Make) -> None:
    camp, state, suppressed = _mixed(make_campaign)
    group = _plan(_chunks(camp, 7), state, suppressed).groups[Action.UNCHANGED]
    items = list(group)
    assert len(group) == len(items) > 20
    assert [a.number for a in group[:5]] == [a.number for a in items[:5]]
    assert group[3].number == items[3].number
    assert group[-1].number == items[-1].number
    assert [a.number for a in group[2:9:3]] == [a.number for a in items[2:9:3]]
    assert [a.number for a in group + []] == [a.number for a in items]  # noqa: RUF005  # what to_submit-like code does
    assert [a.number for a in [] + group] == [a.number for a in items]  # noqa: RUF005
    with pytest.raises(IndexError):
        group[len(items)]
    assert all(a.action == Action.UNCHANGED and a.recipient is None for a in items)


def test_duplicates_name_the_row_first_read_in_any_earlier_chunk(make_campaign: Make) -> None:
    # A duplicate of a row decided column by column is found by number only when it turns up: first of row 3
    # (an index of the chunks so far is built), then of rows read after that (the index grows), then of a
    # row that was itself decided one by one (its chunk held the first duplicate).
    rows = [(f"+49 30 {20000000 + i}", f"Company {i}") for i in range(60)]
    rows[20] = ("+49 30 20000003", "dup of row 3")
    rows[45] = ("030 20000030", "dup of row 30")
    rows[58] = ("+493020000015", "dup of row 15, decided one by one (in the chunk of row 20)")
    rows[59] = ("+49 30 20000003", "dup of row 3 again")
    camp = make_campaign(rows)
    state = {_number(i): Summary(Status.DELIVERED, 1) for i in range(0, 60, 3)}
    chunks = _chunks(camp, 7)
    columnar = _plan(chunks, state, {})
    reference = _plan(_one_by_one(chunks), state, {})
    assert [(d.number, d.source, d.first_source) for d in columnar.duplicate_samples] == [
        (_number(3), "recipients.csv:22", "recipients.csv:5"),
        (_number(30), "recipients.csv:47", "recipients.csv:32"),
        (_number(15), "recipients.csv:60", "recipients.csv:17"),
        (_number(3), "recipients.csv:61", "recipients.csv:5"),
    ]
    assert columnar.duplicate_samples == reference.duplicate_samples
    assert columnar.not_in_manifest == reference.not_in_manifest == 1  # row 45 was overwritten
    assert plan_json(columnar) == plan_json(reference)


@pytest.mark.parametrize("batch", [1, 3, 50, 10_000])
def test_streamed_plan_json_is_the_sorted_dump_byte_for_byte(make_campaign: Make, batch: int) -> None:
    """apply hashes the plan in pieces (a million actions built whole were its peak memory); the pieces must
    join into exactly the document that ``plan --json`` sorted would give, or the receipt's digest changes."""
    camp, state, suppressed = _mixed(make_campaign)
    plans = [_plan(_chunks(camp, 20), state, suppressed), _plan([], {}, {})]
    plans[0].currency, plans[0].cost, plans[0].cost_all = "EUR", 1.5, 9.25  # every optional key of the head
    plans[0].campaign_stop = "budget reached"
    for plan in plans:
        whole = orjson.dumps(plan_json(plan), option=orjson.OPT_SORT_KEYS)
        pieces = list(plan_json_bytes(plan, batch=batch))
        assert b"".join(pieces) == whole
        actions = sum(plan.count(a) for a in Action)
        assert len(pieces) == 2 + -(-actions // batch)  # opening, one piece per batch, the rest of the document
