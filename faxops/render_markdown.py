"""A plan as a pull-request comment: ``faxops plan --format markdown`` and ``faxops show PLANFILE``.

What Atlantis and Terraform users regret most, and what this renderer therefore guarantees:

* bounded size: never more than ``MAX_CHARS`` (GitHub refuses comments over 65,536), whatever the
  campaign's size: every group shows its count, and only its first rows;
* no personal data by default: fax numbers are masked (``+49 30 •••• 5678``), also inside free text;
* deterministic: the same plan gives the same bytes (no "generated at"), and the first line is a hidden
  marker naming the campaign, so that a bot finds and updates its one comment instead of adding one.

Pure: no rich, no I/O. ``PlanView`` is the part of a plan a comment needs, built from a live ``Plan``
or from a saved plan file alike.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from faxops.changes import InputChanges
from faxops.clock import iso, parse_iso
from faxops.plan import Action, Plan
from faxops.redact import mask_number, scrub

if TYPE_CHECKING:
    from faxops.planfile import SavedPlan

MAX_CHARS = 60_000
ROWS_KEPT = 20  # rows per group a view keeps; the renderer shows fewer if the comment would be too long
_ROW_LIMITS = (ROWS_KEPT, 10, 5, 2, 0)
_CELL = 60
_TITLES = {
    Action.SEND: "send",
    Action.RETRY: "retry",
    Action.UNKNOWN: "unknown outcome (reconciled before anything is sent)",
    Action.DEFER: "deferred (not due yet)",
    Action.UNCHANGED: "unchanged",
    Action.SKIP: "skip",
}


def marker(campaign: str) -> str:
    """The hidden first line a CI bot searches for to update its comment for this campaign."""
    return f"<!-- faxops:plan campaign={_cut(campaign, 100).replace('-->', '')} -->"


@dataclass
class PlanView:
    """What a comment shows of a plan: counts, money, time, changed inputs, the first rows per group."""

    campaign: str
    summary: Mapping[str, int]
    counts: Mapping[Action, int]
    rows: Mapping[Action, Sequence[Mapping[str, Any]]]
    at: str | None = None
    provider: str | None = None
    manifest: str | None = None
    cost: Mapping[str, Any] | None = None
    estimate: Mapping[str, Any] | None = None
    campaign_stop: str | None = None
    changes: InputChanges | None = None
    unknown_page_documents: int = 0
    notes: list[str] = field(default_factory=list)


def view_of_plan(
    plan: Plan, *, provider: str | None = None, manifest: str | None = None, changes: InputChanges | None = None
) -> PlanView:
    """The view of a plan just made (reads only the first ``ROWS_KEPT`` actions of each group)."""
    cost = None
    if plan.currency and (plan.cost or plan.cost_all):
        cost = {"currency": plan.currency, "this_run": round(plan.cost, 2), "all": round(plan.cost_all, 2)}
    estimate = None
    if plan.estimate is not None:
        finish = plan.estimate.finish
        estimate = {
            "finish": iso(finish) if finish else None,
            "per_minute": plan.estimate.per_minute,
            "unreachable": plan.estimate.unreachable,
        }
    return PlanView(
        campaign=plan.campaign,
        summary=plan.summary(),
        counts={a: plan.count(a) for a in Action},
        rows={a: [item.to_json() for item in plan.groups[a][:ROWS_KEPT]] for a in Action},
        at=iso(plan.now) if plan.now else None,
        provider=provider,
        manifest=manifest,
        cost=cost,
        estimate=estimate,
        campaign_stop=plan.campaign_stop,
        changes=changes,
        unknown_page_documents=plan.unknown_page_documents,
    )


def view_of_saved(saved: SavedPlan) -> PlanView:
    """The view of a saved plan file, from the file alone (no manifest, no state)."""
    extra = saved.model_extra or {}
    counts = dict.fromkeys(Action, 0)
    rows: dict[Action, list[Mapping[str, Any]]] = {a: [] for a in Action}
    for item in saved.actions:
        try:
            action = Action(str(item.get("action")))
        except ValueError:
            continue
        counts[action] += 1
        if len(rows[action]) < ROWS_KEPT:
            rows[action].append(item)
    changes = extra.get("changes")
    return PlanView(
        campaign=saved.campaign,
        summary=saved.summary,
        counts=counts,
        rows=rows,
        at=saved.at,
        provider=_str_or_none(extra.get("provider")),
        manifest=saved.manifest,
        cost=extra.get("cost") if isinstance(extra.get("cost"), Mapping) else None,
        estimate=extra.get("estimate") if isinstance(extra.get("estimate"), Mapping) else None,
        campaign_stop=_str_or_none(extra.get("campaign_stop")),
        changes=InputChanges.from_json(changes) if isinstance(changes, Mapping) else None,
    )


def render(view: PlanView, *, reveal_numbers: bool = False, max_chars: int = MAX_CHARS) -> str:
    """The comment: at most ``max_chars`` characters, fewer rows per group when it must be shorter."""
    for limit in _ROW_LIMITS:
        text = _render(view, reveal_numbers, limit)
        if len(text) <= max_chars:
            return text
    # Unreachable with the cut cells above, kept so that the bound holds even if the header grows.
    note = "\n\n_(cut to fit a comment)_\n"
    return text[: max_chars - len(note)] + note


def _render(view: PlanView, reveal: bool, limit: int) -> str:
    s = view.summary
    out = [marker(view.campaign), f"### faxops plan: `{_code(view.campaign)}`", ""]
    where = [f"manifest `{_code(view.manifest)}`" if view.manifest else "", f"provider {_text(view.provider or '')}"]
    if view.provider or view.manifest:
        out += [" · ".join(w for w in where if w and w != "provider "), ""]
    headline = (
        f"**{s.get('send', 0):,} to send**, {s.get('retry', 0):,} to retry, {s.get('unknown', 0):,} unknown, "
        f"{s.get('deferred', 0):,} deferred, {s.get('unchanged', 0):,} unchanged, {s.get('skip', 0):,} skipped"
    )
    out.append(headline)
    out.append("")
    money = f"**Pages:** {s.get('pages', 0):,}"
    if view.unknown_page_documents:
        money += f" (+ {view.unknown_page_documents} document(s) of unknown length per fax)"
    if view.cost:
        cur = _text(str(view.cost.get("currency", "")))
        money += f" · **Cost:** {float(view.cost.get('this_run', 0)):,.2f} {cur} this run"
        if float(view.cost.get("all", 0)) > float(view.cost.get("this_run", 0)):
            money += f", {float(view.cost.get('all', 0)):,.2f} {cur} with the deferred"
    out += [money, ""]
    schedule = _schedule_line(view)
    if schedule:
        out += [f"**Schedule:** {schedule}", ""]
    if view.changes is not None:
        out += [f"**Since the last apply:** {_text(view.changes.line())}", ""]
    if view.campaign_stop:
        stop = view.campaign_stop if reveal else scrub(view.campaign_stop)
        out += [f"> **Warning:** a document or account failure was recorded: {_text(_cut(stop, 200))}", ""]
    out += ["| | group | recipients |", "|---|---|---:|"]
    for action in Action:
        out.append(f"| `{action.symbol}` | {_TITLES[action]} | {view.counts.get(action, 0):,} |")
    out.append("")
    for action in Action:
        count = view.counts.get(action, 0)
        if not count:
            continue
        shown = list(view.rows.get(action, ()))[:limit]
        title = f"<code>{html.escape(action.symbol)}</code> {_TITLES[action]} ({count:,})"
        out += ["<details>", f"<summary>{title}</summary>", ""]
        if shown:
            out += ["| number | name | detail | source |", "|---|---|---|---|"]
            out += [_row(item, reveal) for item in shown]
        if count > len(shown):
            out += ["", f"_… and {count - len(shown):,} more (`faxops plan --details` lists all)_"]
        out += ["", "</details>", ""]
    out.append("_Numbers are masked; `--reveal-numbers` shows them._" if not reveal else "_Numbers shown in full._")
    return "\n".join(out) + "\n"


def _schedule_line(view: PlanView) -> str:
    est = view.estimate
    if not est:
        parts = []
        if view.summary.get("send") or view.summary.get("retry"):
            parts.append("the sends and retries are due now")
        if view.summary.get("deferred"):
            parts.append(f"{view.summary['deferred']:,} deferred until their retry wait or send window allows")
        return "; ".join(parts)
    per_minute = est.get("per_minute")
    pace = f"at {float(per_minute):g}/min" if per_minute else "as fast as the provider accepts"
    finish, now = parse_iso(est.get("finish")), parse_iso(view.at)
    if finish is None:
        return f"{int(est.get('unreachable') or 0):,} recipient(s) cannot be sent before the campaign expires ({pace})"
    span = _span(finish, now) if now else ""
    when = f"{finish:%a %d %b %Y %H:%M}Z"
    return f"the last fax goes out about {when}{span} ({pace}, within the send windows)"


def _span(finish: datetime, now: datetime) -> str:
    minutes = max(0, int((finish - now).total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return f", in {days} d {hours} h {minutes} min" if days else f", in {hours} h {minutes} min"


def _row(item: Mapping[str, Any], reveal: bool) -> str:
    number = str(item.get("number") or "")
    shown = number if reveal else (mask_number(number) if number.startswith("+") else "••••")
    # Unchanged recipients carry no reason: their recorded status (delivered, queued) is what a reviewer needs.
    why = item.get("reason") or (item.get("status") if item.get("action") == "unchanged" else "")
    detail = " · ".join(str(x) for x in (f"due {item['due']}" if item.get("due") else "", why or "") if x)
    if int(item.get("attempt") or 1) > 1 and item.get("action") in ("send", "retry"):
        detail = f"attempt {item['attempt']}" + (f": {detail}" if detail else "")
    cells = [str(item.get("name") or ""), detail]
    if not reveal:
        cells = [scrub(c) for c in cells]
    name, detail = (_text(_cut(c, _CELL if i == 0 else 2 * _CELL)) for i, c in enumerate(cells))
    source = _text(_cut(str(item.get("source") or ""), _CELL))
    return f"| {_code_cell(shown)} | {name} | {detail} | {source} |"


_MARKDOWN = re.compile(r"([\\`*_\[\]|#~])")


def _text(text: str) -> str:
    """Text safe in a table cell: no HTML, no links, no table breaks, no @mentions that ping someone."""
    flat = " ".join(text.split())
    return _MARKDOWN.sub(r"\\\1", html.escape(flat, quote=False)).replace("@", "&#64;")


def _code(text: str | None) -> str:
    return (text or "").replace("`", "'")


def _code_cell(text: str) -> str:
    return f"`{_code(text).replace('|', '/')}`"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None
