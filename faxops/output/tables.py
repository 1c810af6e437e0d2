"""The rich tables and lines that ``Output`` prints: plan groups, deferred zones, attempts, estimates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from faxops.plan import Action, Plan, PlannedAction
from faxops.state.records import Record

if TYPE_CHECKING:
    from faxops.planfile import SavedPlan

# One colour per plan action and per recorded status, so that plan, show and status agree.
STYLE = {
    Action.SEND: "green",
    Action.RETRY: "yellow",
    Action.UNKNOWN: "magenta",
    Action.DEFER: "blue",
    Action.UNCHANGED: "dim",
    Action.SKIP: "red",
}
TITLE = {
    Action.SEND: "send",
    Action.RETRY: "retry",
    Action.UNKNOWN: "unknown outcome (reconciled before anything is sent)",
    Action.DEFER: "deferred (not due yet: a later run sends them, or `apply --wait`)",
    Action.UNCHANGED: "unchanged",
    Action.SKIP: "skip",
}
STATUS_STYLE = {
    "delivered": "green",
    "queued": "cyan",
    "sending": "cyan",
    "failed": "red",
    "pending": "magenta",
    "canceled": "yellow",
    "expired": "yellow",
    "not_sent": "dim",
}


def action_table() -> Table:
    """Rows of one plan group: symbol and number, name, detail (reason), source.

    Numbers are never cut: they are what ``resolve``, ``cancel`` and ``--resend`` need, copied from
    here. Only the number column is ``no_wrap``, so rich narrows the others first (a narrow terminal, a
    200-column pipe holding a long provider message); their cells then end in an ellipsis.
    """
    rows = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    rows.add_column(no_wrap=True)
    rows.add_column(max_width=40)
    rows.add_column()
    rows.add_column()
    return rows


def cut(name: str, detail: str, source: str) -> tuple[Text, Text, Text]:
    """The cells after the number: one line each, cut with an ellipsis when the table must shrink."""
    return (
        Text(name, no_wrap=True, overflow="ellipsis"),
        Text(detail, style="dim", no_wrap=True, overflow="ellipsis"),
        Text(source, style="dim", no_wrap=True, overflow="ellipsis"),
    )


def local(moment: datetime, zone: str | None) -> str:
    """A due time as the recipient reads it, with UTC beside it."""
    name = (zone or "UTC").split(",")[0].strip()
    try:
        local = moment.astimezone(ZoneInfo(name))
    except (KeyError, ValueError):
        local = moment.astimezone(UTC)
    utc = moment.astimezone(UTC).strftime("%H:%MZ")
    return f"{local:%a %d %b %H:%M} {local.tzname()} ({utc})"


def deferred_table(group: Sequence[PlannedAction]) -> Table:
    by_zone: dict[str, list[datetime]] = {}
    for item in group:
        if item.due is not None:  # every deferred action has a due time; the type allows None
            by_zone.setdefault(item.zone or "UTC", []).append(item.due)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("", width=4)  # indent under the group title
    for column in ("time zone", "recipients", "first due (local)", "last due (local)"):
        table.add_column(column, no_wrap=True, justify="right" if column == "recipients" else "left")
    for zone, dues in sorted(by_zone.items(), key=lambda kv: min(kv[1])):
        table.add_row("", escape(zone), str(len(dues)), local(min(dues), zone), local(max(dues), zone))
    return table


def estimate_line(plan: Plan) -> str:
    est = plan.estimate
    assert est is not None
    assert plan.now is not None
    pace = f"at {est.per_minute:g}/min" if est.per_minute else "as fast as the provider accepts"
    if est.finish is None:
        return (
            f"[yellow]Estimate:[/] {est.unreachable} recipient(s) cannot be sent before the campaign expires "
            f"({pace}, within the send windows)"
        )
    span = est.finish - plan.now
    hours, rest = divmod(int(span.total_seconds()), 3600)
    days, hours = divmod(hours, 24)
    text = f"{days} d {hours} h {rest // 60} min" if days else f"{hours} h {rest // 60} min"
    finish = f"{est.finish.astimezone(UTC):%a %d %b %H:%M}Z"
    return f"[bold]Estimate:[/] the last fax goes out about {finish}, in {text} ({pace}, within the send windows)"


def attempt_rows(attempts: Sequence[Record]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("#", "status", "failure", "provider status", "job", "fax id", "pages", "submitted", "updated"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason / notes", overflow="fold")
    for a in attempts:
        notes = [str(a[k]) for k in ("reason", "forced", "reconciled") if a.get(k)]
        if a.get("send_at"):
            notes.append(f"provider-side start {a['send_at']}")
        if a.get("resolved"):
            notes.append(f"resolved by {a['resolved'].get('by', '?')}: {a['resolved'].get('note', '')}")
        status = str(a.get("status"))
        table.add_row(
            str(a.get("n", "")),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            escape(str(a.get("failure") or "")),
            escape(str(a.get("raw_status") or "")),
            escape(str(a.get("job_id") or "")),
            escape(str(a.get("fax_id") or a.get("recipient_id") or "")),
            str(a.get("pages") or ""),
            escape(str(a.get("submitted_at") or "")),
            escape(str(a.get("updated_at") or "")),
            escape("; ".join(notes)),
        )
    return table


def plan_summary(plan: Plan) -> str:
    """The plan's one line: counts per action, pages, and the cost estimate (rich markup)."""
    s = plan.summary()
    text = f"[bold]Plan:[/] {s['send']} to send, {s['retry']} to retry, {s['unchanged']} unchanged, {s['skip']} skipped"
    if s["deferred"]:
        text += f", [blue]{s['deferred']} deferred[/]"
    if s["unknown"]:
        text += f", [magenta]{s['unknown']} unknown[/]"
    pages = f"{s['pages']} pages"
    if plan.unknown_page_documents:
        pages += f" (+ {plan.unknown_page_documents} document(s) of unknown length per fax)"
    if plan.currency:
        pages += f" · est. {plan.cost:,.2f} {plan.currency} now"
        if plan.cost_all > plan.cost:
            pages += f" ({plan.cost_all:,.2f} with the deferred)"
    return text + f" · {pages}"


def render_saved_plan(
    out: Console, saved: SavedPlan, *, path: Path, details: bool, limit: int, automation: bool
) -> None:
    """A saved plan as ``plan`` showed it when it was made (from the file alone: no manifest, no state)."""
    ref = saved.state
    against = f"serial {ref.serial}, lineage {ref.lineage}" if ref.lineage else "no recorded state yet"
    out.print(f"Saved plan [bold]{escape(str(path))}[/] for campaign [bold]{escape(saved.campaign)}[/]")
    out.print(f"[dim]  planned for {escape(saved.at or '?')} · manifest {escape(saved.manifest)} · {against}[/]")
    out.print()
    by_action: dict[str, list[Mapping[str, object]]] = {}
    for saved_action in saved.actions:
        by_action.setdefault(str(saved_action.get("action")), []).append(saved_action)
    for action in Action:
        group = by_action.get(str(action), [])
        if not group or (action == Action.UNCHANGED and not details):
            continue
        style = STYLE[action]
        out.print(f"  [{style}]{action.symbol} {TITLE[action]}[/] ({len(group)})")
        shown = group if details else group[:limit]
        rows = action_table()
        for item in shown:
            detail = f"due {item['due']}" if item.get("due") else ""
            if item.get("reason"):
                detail = f"{detail}  {item['reason']}".strip()
            rows.add_row(
                f"      [{style}]{action.symbol}[/] {escape(str(item.get('number')))}",
                *cut(str(item.get("name") or ""), detail, str(item.get("source") or "")),
            )
        out.print(rows)
        if len(shown) < len(group):
            out.print(f"      [dim]… and {len(group) - len(shown)} more (--details lists all)[/]")
        out.print()
    s = saved.summary
    out.print(
        f"[bold]Plan:[/] {s.get('send', 0)} to send, {s.get('retry', 0)} to retry, {s.get('unchanged', 0)} "
        f"unchanged, {s.get('skip', 0)} skipped · {s.get('pages', 0)} pages"
    )
    if automation:
        out.print(f"[dim]The apply step's `faxops apply {escape(str(path))}` sends exactly this, or exits 4.[/]")
    else:
        out.print(f"[dim]`faxops apply {escape(str(path))}` sends exactly this, if nothing changed since.[/]")
