"""Everything faxops shows a person. The only module that imports rich.

Human output goes to stderr when stdout carries a machine document (``--json``), so that stdout is
exactly one JSON document. Colour follows the terminal, ``NO_COLOR`` and ``--no-color``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TextIO
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from faxops import secrets
from faxops.apply import ApplyReport, JobResult
from faxops.errors import FaxopsError, InputError, Problem
from faxops.plan import Action, Plan, PlannedAction
from faxops.reconcile import ReconcileReport
from faxops.state.lockfile import Header
from faxops.state.records import Record

if TYPE_CHECKING:
    from faxops.planfile import SavedPlan
    from faxops.reports import Delivery
    from faxops.tracking import RefreshReport

_STYLE = {
    Action.SEND: "green",
    Action.RETRY: "yellow",
    Action.UNKNOWN: "magenta",
    Action.DEFER: "blue",
    Action.UNCHANGED: "dim",
    Action.SKIP: "red",
}
_TITLE = {
    Action.SEND: "send",
    Action.RETRY: "retry",
    Action.UNKNOWN: "unknown outcome (reconciled before anything is sent)",
    Action.DEFER: "deferred (not due yet: a later run sends them, or `apply --wait`)",
    Action.UNCHANGED: "unchanged",
    Action.SKIP: "skip",
}
_STATUS_STYLE = {
    "delivered": "green",
    "queued": "cyan",
    "sending": "cyan",
    "failed": "red",
    "pending": "magenta",
    "canceled": "yellow",
    "expired": "yellow",
    "not_sent": "dim",
}


def _console(stream: TextIO, no_color: bool) -> Console:
    # NO_COLOR means no styling at all: rich's own no_color keeps bold and dim; no colour system drops them.
    system: Literal["auto"] | None = None if no_color else "auto"
    console = Console(file=stream, no_color=no_color, color_system=system, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # Logs and pipes have no width; wrapping tables at 80 columns only hurts there.
        console = Console(
            file=stream, no_color=no_color, color_system=system, highlight=False, soft_wrap=True, width=200
        )
    return console


class Output:
    """The terminal, as two rich consoles."""

    def __init__(self, *, color: bool = True, json_mode: bool = False, automation: bool = False) -> None:
        self.automation = automation  # a pipeline runs faxops: no prompts, no colour, no live bars
        no_color = not color or bool(os.environ.get("NO_COLOR")) or automation
        self.out = _console(sys.stdout, no_color)
        self.err = _console(sys.stderr, no_color)
        # With --json, stdout belongs to the document; people read stderr.
        self.human = self.err if json_mode else self.out

    @property
    def interactive(self) -> bool:
        return not self.automation and self.err.is_terminal and sys.stdin.isatty()

    def hint(self, person: str, pipeline: str) -> None:
        """A next step: phrased for a person at a terminal, or for a pipeline in automation mode."""
        self.note(pipeline if self.automation else person)

    def json(self, text: str) -> None:
        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()

    def document(self, text: str) -> None:
        """A rendered document (markdown) on stdout, byte for byte: no wrapping, no markup."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def stream(self, chunks: Iterable[bytes]) -> None:
        """Write a document (a report of a million rows) to stdout piece by piece, ending with a newline.

        Bytes go to the binary buffer under stdout, which the secret scrubber wrapping stdout does not see:
        each piece is scrubbed here (pieces end between rows; a secret never spans two)."""
        sys.stdout.flush()
        out = sys.stdout.buffer
        last = b"\n"
        for chunk in chunks:
            if chunk:
                out.write(secrets.scrub_bytes(chunk))
                last = chunk[-1:]
        if last != b"\n":
            out.write(b"\n")
        out.flush()

    def line(self, text: str = "", style: str | None = None) -> None:
        self.human.print(escape(text), style=style)

    def note(self, text: str) -> None:
        self.err.print(escape(text), style="dim")

    def warning(self, text: str) -> None:
        """Something the user should look at, that did not stop the command (stderr, yellow)."""
        self.err.print(escape(text), style="yellow")

    def failure(self, text: str) -> None:
        """One thing that failed (stderr, red, marked ✗)."""
        self.err.print(f"[red]✗ {escape(text)}[/]")

    def interrupt_received(self) -> None:
        """The first Ctrl-C/SIGTERM of a run: say what happens now and what a second one does."""
        self.err.print(
            "\n[yellow]Interrupt received: finishing the faxes in flight and saving state "
            "(press Ctrl-C again to abandon them; they will be reconciled next run).[/]"
        )

    def interrupted(self) -> None:
        self.err.print("Interrupted.")

    def internal_error(self, exc: BaseException, log: Path) -> None:
        """A bug in faxops: one line for the user, the traceback is in ``log``."""
        self.err.print(f"[bold red]Internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        self.err.print(f"[dim]The traceback is in {escape(str(log))}; please attach it to a bug report.[/]")

    # --- errors --------------------------------------------------------------------------------

    def problems(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            style = "yellow" if problem.severity == "warning" else "red"
            self.err.print(escape(str(problem)), style=style)

    def error(self, exc: FaxopsError) -> None:
        if isinstance(exc, InputError) and exc.problems:
            self.problems(exc.problems)
            errors = sum(1 for p in exc.problems if p.severity != "warning")
            self.err.print(
                f"[bold red]Error:[/] {escape(exc.message)}"
                if errors == 0
                else f"[bold red]Error:[/] {errors} problem(s) found; nothing was sent."
            )
        else:
            self.err.print(f"[bold red]Error:[/] {escape(exc.message)}")
        if exc.hint:
            self.err.print(f"[dim]Hint: {escape(exc.hint)}[/]")

    # --- plan ----------------------------------------------------------------------------------

    def plan(self, plan: Plan, *, provider: str, details: bool, limit: int = 10) -> None:
        out = self.human
        if plan.has_changes or plan.count(Action.SKIP):
            out.print(
                f"faxops will perform these actions for campaign [bold]{escape(plan.campaign)}[/] "
                f"through [bold]{escape(provider)}[/]:"
            )
            out.print()
        for action in Action:
            group = plan.groups[action]
            if not group or (action == Action.UNCHANGED and not details):
                continue
            style = _STYLE[action]
            out.print(f"  [{style}]{action.symbol} {_TITLE[action]}[/] ({len(group)})")
            if action == Action.DEFER:
                out.print(_deferred_table(group))
                if not details:
                    out.print()
                    continue
            shown = group if details else group[:limit]
            rows = _action_table()
            for item in shown:
                name = item.recipient.name if item.recipient is not None and item.recipient.name else ""
                detail = f"attempt {item.attempt}" if action == Action.RETRY and item.attempt else ""
                if item.due is not None:
                    detail = f"due {_local(item.due, item.zone)}"
                if item.reason:
                    detail = f"{detail}  {item.reason}".strip()
                rows.add_row(
                    f"      [{style}]{action.symbol}[/] {escape(item.number)}", *_cut(name, detail, item.source or "")
                )
            out.print(rows)
            if len(shown) < len(group):
                out.print(f"      [dim]… and {len(group) - len(shown)} more (--details lists all)[/]")
            out.print()
        if plan.duplicates:
            sample = plan.duplicate_samples[0]
            out.print(
                f"[yellow]Duplicates merged: {plan.duplicates}[/] [dim](e.g. {escape(sample.number)} at "
                f"{escape(sample.source)}, first at {escape(sample.first_source)})[/]"
            )
        if plan.not_in_manifest:
            out.print(
                f"[dim]{plan.not_in_manifest} recorded recipient(s) are no longer in the manifest; "
                "their records are kept.[/]"
            )
        if plan.campaign_stop:
            out.print(
                f"[bold yellow]Warning:[/] a failure that is not the recipient's was recorded "
                f"({escape(plan.campaign_stop)}); apply stops at the first such failure. Fix the cause first."
            )
        if plan.estimate is not None and (plan.count(Action.DEFER) or plan.estimate.per_minute):
            out.print(_estimate_line(plan))
        out.print(self._plan_summary(plan))

    def planned_for(self, plan: Plan, zone: str | None) -> None:
        """The moment the plan was made for (``plan --at`` or now), in the campaign's time zone and UTC."""
        if plan.now is None:
            return
        try:
            local = plan.now.astimezone(ZoneInfo(zone) if zone else UTC)
        except (KeyError, ValueError):
            local = plan.now.astimezone(UTC)
        when = f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
        if local.utcoffset():
            when += f" ({plan.now.astimezone(UTC):%H:%MZ})"
        self.human.print(f"[dim]Planned for {escape(when)}.[/]")

    def plan_summary_line(self, plan: Plan) -> None:
        """The plan's one-line summary alone (``apply PLANFILE``: the plan itself was reviewed already)."""
        self.human.print(self._plan_summary(plan))

    @staticmethod
    def _plan_summary(plan: Plan) -> str:
        s = plan.summary()
        text = (
            f"[bold]Plan:[/] {s['send']} to send, {s['retry']} to retry, {s['unchanged']} unchanged, "
            f"{s['skip']} skipped"
        )
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

    def saved_plan(self, saved: SavedPlan, *, path: Path, details: bool, limit: int = 10) -> None:
        """A saved plan as ``plan`` showed it when it was made (from the file alone: no manifest, no state)."""
        out = self.human
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
            style = _STYLE[action]
            out.print(f"  [{style}]{action.symbol} {_TITLE[action]}[/] ({len(group)})")
            shown = group if details else group[:limit]
            rows = _action_table()
            for item in shown:
                detail = f"due {item['due']}" if item.get("due") else ""
                if item.get("reason"):
                    detail = f"{detail}  {item['reason']}".strip()
                rows.add_row(
                    f"      [{style}]{action.symbol}[/] {escape(str(item.get('number')))}",
                    *_cut(str(item.get("name") or ""), detail, str(item.get("source") or "")),
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
        if self.automation:
            out.print(f"[dim]The apply step's `faxops apply {escape(str(path))}` sends exactly this, or exits 4.[/]")
        else:
            out.print(f"[dim]`faxops apply {escape(str(path))}` sends exactly this, if nothing changed since.[/]")

    def confirm(self, count: int) -> bool:
        self.err.print(f"\nDo you want to send [bold]{count}[/] fax(es)? Only 'yes' will be accepted.")
        try:
            answer = self.err.input("  Enter a value: ")
        except EOFError:
            return False
        return answer.strip() == "yes"

    # --- apply ---------------------------------------------------------------------------------

    def progress(self, total: int) -> ApplyProgress:
        return ApplyProgress(self, total)

    def reconcile(self, report: ReconcileReport) -> None:
        if report.found or report.not_sent:
            self.line(f"Reconciled: {report.found} found at the provider, {report.not_sent} proven not sent.")
        for held in report.held:
            self.err.print(
                f"[magenta]? held[/] {escape(', '.join(held.numbers))} "
                f"[dim](reference {escape(held.reference)}: {escape(held.evidence)})[/]"
            )

    def apply_report(self, report: ApplyReport) -> None:
        out = self.human
        o = report.outcomes
        rate = report.submitted / report.elapsed if report.elapsed > 0 else 0.0
        out.print(
            f"[bold]Apply complete:[/] {report.submitted} submitted in {report.elapsed:.1f}s ({rate:,.0f}/s): "
            f"{o['accepted']} accepted, {o['rejected']} rejected, {o['not_sent']} not sent, "
            f"{o['unknown']} unknown · {report.delivered} delivered, {report.failed} failed so far"
            if report.stopped is None
            else f"[bold yellow]Apply stopped:[/] {escape(report.stopped)}. {report.submitted} submitted: "
            f"{o['accepted']} accepted, {o['rejected']} rejected, {o['not_sent']} not sent, {o['unknown']} unknown"
        )
        for error in report.errors[:20]:
            self.err.print(f"  [red]✗[/] {escape(error)}")
        if len(report.errors) > 20:
            self.err.print(f"  [dim]… and {len(report.errors) - 20} more[/]")
        for where in report.rescued:
            self.err.print(f"[bold red]Job records could not be journalled; they were saved to {escape(where)}[/]")

    def recipient(self, number: str, record: Record) -> None:
        status = str(record.get("status"))
        attempts = record.get("attempts") or []
        self.human.print(
            f"[bold]{escape(number)}[/] · [{_STATUS_STYLE.get(status, '')}]{status}[/] · {len(attempts)} attempt(s)"
            + (f" · expired at {record['expired_at']}" if record.get("expired_at") else "")
        )
        if attempts:
            self.human.print(_attempt_rows(attempts))

    def waiting(self, due: datetime, deferred: int) -> None:
        self.err.print(
            f"[blue]Waiting[/] until {due.astimezone(UTC):%a %d %b %H:%M}Z for the next send window "
            f"({deferred} recipient(s) deferred). Ctrl-C stops; everything sent so far is recorded."
        )

    def refresh(self, report: RefreshReport, *, brief: bool = False) -> None:
        if report.pushed:
            self.err.print(f"Took in {report.pushed} status push(es) from the webhook inbox.")
        if report.skipped:
            if not brief or report.not_reported == 0:
                self.err.print(f"[dim]Refresh: {escape(report.skipped)}[/]")
        elif report.jobs or not brief:
            self.err.print(
                f"Refreshed {report.jobs} job(s) ({report.open} recipient(s) open): {report.changed} changed, "
                f"{report.became_final} now final."
            )
        if report.stopped:
            self.err.print(f"[yellow]Refresh stopped early:[/] {escape(report.stopped)}")

    def deliveries(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.ok:
                self.err.print(f"[green]✓[/] {escape(d.target)}: {escape(d.detail)}")
            else:
                self.err.print(f"[yellow]Warning:[/] {escape(d.target)} failed: {escape(d.detail)}")

    # --- status --------------------------------------------------------------------------------

    def status(
        self,
        campaign: str,
        header: Header | None,
        rows: Sequence[Mapping[str, object]],
        counts: Counter[str],
        total: int,
        *,
        details: bool,
        limit: int = 50,
        failures: Counter[str] | None = None,
    ) -> None:
        out = self.human
        if header is None and not total:
            then = "the pipeline's apply step records it" if self.automation else "run `faxops apply`"
            out.print(f"Campaign [bold]{escape(campaign)}[/] has no recorded state yet ({then}).")
            return
        meta = f"serial {header.serial}, lineage {header.lineage}" if header else "not folded yet"
        out.print(f"Campaign [bold]{escape(campaign)}[/] · {total} recipient(s) recorded · {meta}")
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("status")
        table.add_column("recipients", justify="right")
        for status, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(f"[{_STATUS_STYLE.get(status, '')}]{status}[/]", str(count))
        out.print(table)
        if failures:
            out.print()
            by_class = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            by_class.add_column("failure class")
            by_class.add_column("recipients", justify="right")
            for failure, count in failures.most_common():
                by_class.add_row(f"[red]{escape(failure)}[/]", str(count))
            out.print(by_class)
        if not rows:
            return
        out.print()
        detail = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        # As in plan tables: only the number is never cut; the other columns narrow with an ellipsis.
        detail.add_column("number", no_wrap=True)
        for column in ("status", "failure", "attempts", "job", "provider status", "updated"):
            detail.add_column(column)
        detail.add_column("reason", max_width=60)
        for row in rows:
            cells = [
                row.get(k) or ""
                for k in ("status", "failure", "attempts", "job_id", "raw_status", "updated_at", "reason")
            ]
            texts = [Text(str(c), no_wrap=True, overflow="ellipsis") for c in cells]
            texts[0].stylize(_STATUS_STYLE.get(str(row["status"]), ""))
            detail.add_row(escape(str(row["number"])), *texts)
        out.print(detail)
        if not details and total > len(rows):
            out.print(f"[dim]… {total - len(rows)} more (--details lists all)[/]")


def _action_table() -> Table:
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


def _cut(name: str, detail: str, source: str) -> tuple[Text, Text, Text]:
    """The cells after the number: one line each, cut with an ellipsis when the table must shrink."""
    return (
        Text(name, no_wrap=True, overflow="ellipsis"),
        Text(detail, style="dim", no_wrap=True, overflow="ellipsis"),
        Text(source, style="dim", no_wrap=True, overflow="ellipsis"),
    )


def _local(moment: datetime, zone: str | None) -> str:
    """A due time as the recipient reads it, with UTC beside it."""
    name = (zone or "UTC").split(",")[0].strip()
    try:
        local = moment.astimezone(ZoneInfo(name))
    except (KeyError, ValueError):
        local = moment.astimezone(UTC)
    utc = moment.astimezone(UTC).strftime("%H:%MZ")
    return f"{local:%a %d %b %H:%M} {local.tzname()} ({utc})"


def _deferred_table(group: Sequence[PlannedAction]) -> Table:
    by_zone: dict[str, list[datetime]] = {}
    for item in group:
        if item.due is not None:  # every deferred action has a due time; the type allows None
            by_zone.setdefault(item.zone or "UTC", []).append(item.due)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("", width=4)  # indent under the group title
    for column in ("time zone", "recipients", "first due (local)", "last due (local)"):
        table.add_column(column, no_wrap=True, justify="right" if column == "recipients" else "left")
    for zone, dues in sorted(by_zone.items(), key=lambda kv: min(kv[1])):
        table.add_row("", escape(zone), str(len(dues)), _local(min(dues), zone), _local(max(dues), zone))
    return table


def _estimate_line(plan: Plan) -> str:
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


def _attempt_rows(attempts: Sequence[Record]) -> Table:
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
            f"[{_STATUS_STYLE.get(status, '')}]{status}[/]",
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


class ApplyProgress:
    """A progress bar on a terminal; a line every 10 % otherwise (CI logs stay readable).

    Both say how long the run has taken, how long it may still take, and how many faxes failed so far:
    an operator watching a long run should not learn of a wave of rejections only at the end.
    """

    def __init__(self, output: Output, total: int) -> None:
        self.output = output
        self.total = total
        self.done = 0
        self.failed = 0  # rejected or not sent
        self.unknown = 0
        self._lock = threading.Lock()
        self._next_mark = 0.1
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._plain_lines = output.automation  # CI logs: a line every 10 % whatever the size of the run
        if output.err.is_terminal and total and not output.automation:
            self._progress = Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failures]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=output.err,
                transient=True,
            )

    def __enter__(self) -> ApplyProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("send", total=self.total, failures=self._failures())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _failures(self) -> str:
        text = f"[red]{self.failed} failed[/]" if self.failed else "0 failed"
        return text + (f", [magenta]{self.unknown} unknown[/]" if self.unknown else "")

    def __call__(self, result: JobResult) -> None:
        with self._lock:
            count = len(result.numbers)
            self.done += count
            if result.outcome in ("rejected", "not_sent"):
                self.failed += count
            elif result.outcome == "unknown":
                self.unknown += count
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, advance=count, failures=self._failures())
                return
            # No terminal (CI, cron): a line every 10 %, for runs long enough to need one.
            if (self.total >= 1000 or self._plain_lines) and self.done / self.total >= self._next_mark:
                elapsed = time.monotonic() - self._started
                left = elapsed * (self.total - self.done) / self.done
                self.output.err.print(
                    f"sent {self.done}/{self.total} ({self.done * 100 // self.total}%), {self._failures()} · "
                    f"elapsed {_clock(elapsed)}, ETA {_clock(left)}"
                )
                while self._next_mark <= self.done / self.total:
                    self._next_mark += 0.1


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
