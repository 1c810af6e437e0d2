"""Everything faxops shows a person. The only module that imports rich.

Human output goes to stderr when stdout carries a machine document (``--json``), so that stdout is
exactly one JSON document. Colour follows the terminal, ``NO_COLOR`` and ``--no-color``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from faxops import secrets
from faxops.apply import ApplyReport
from faxops.errors import FaxopsError, InputError, Problem
from faxops.plan import Action, Plan
from faxops.reconcile import ReconcileReport
from faxops.state.lockfile import Header
from faxops.state.records import Record

if TYPE_CHECKING:
    from faxops.planfile import SavedPlan
    from faxops.reports import Delivery
    from faxops.tracking import RefreshReport

from faxops.output.progress import ApplyProgress
from faxops.output.tables import (
    STATUS_STYLE,
    STYLE,
    TITLE,
    action_table,
    attempt_rows,
    cut,
    deferred_table,
    estimate_line,
    local,
    plan_summary,
    render_saved_plan,
)


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
        """Whether a person can answer a question: the prompt goes to stderr, the answer comes from stdin."""
        return not self.automation and self.err.is_terminal and sys.stdin.isatty()

    def hint(self, person: str, pipeline: str) -> None:
        """A next step: phrased for a person at a terminal, or for a pipeline in automation mode."""
        self.note(pipeline if self.automation else person)

    def json(self, text: str) -> None:
        """A machine document on stdout, never through rich (which would wrap lines and read [brackets])."""
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
        """Plain text for a person; escaped, so a number or a provider message is never read as markup."""
        self.human.print(escape(text), style=style)

    def note(self, text: str) -> None:
        """A remark on stderr, so that it never mixes into a document or a table on stdout."""
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
        """A second Ctrl-C, or one outside a run: the command stops at once."""
        self.err.print("Interrupted.")

    def internal_error(self, exc: BaseException, log: Path) -> None:
        """A bug in faxops: one line for the user, the traceback is in ``log``."""
        self.err.print(f"[bold red]Internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        self.err.print(f"[dim]The traceback is in {escape(str(log))}; please attach it to a bug report.[/]")

    # --- errors --------------------------------------------------------------------------------

    def problems(self, problems: Iterable[Problem]) -> None:
        """Each problem as ``file:line: field: message`` (warnings in yellow)."""
        for problem in problems:
            style = "yellow" if problem.severity == "warning" else "red"
            self.err.print(escape(str(problem)), style=style)

    def error(self, exc: FaxopsError) -> None:
        """An error the user must act on: its problems, its message, its hint, and any notes added on the way."""
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
        # Notes say what else happened while the error unwound (e.g. the state could not be folded).
        for note in getattr(exc, "__notes__", ()):
            self.err.print(escape(str(note)), style="yellow")

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
            style = STYLE[action]
            out.print(f"  [{style}]{action.symbol} {TITLE[action]}[/] ({len(group)})")
            if action == Action.DEFER:
                out.print(deferred_table(group))
                if not details:
                    out.print()
                    continue
            shown = group if details else group[:limit]
            rows = action_table()
            for item in shown:
                name = item.recipient.name if item.recipient is not None and item.recipient.name else ""
                detail = f"attempt {item.attempt}" if action == Action.RETRY and item.attempt else ""
                if item.due is not None:
                    detail = f"due {local(item.due, item.zone)}"
                if item.reason:
                    detail = f"{detail}  {item.reason}".strip()
                rows.add_row(
                    f"      [{style}]{action.symbol}[/] {escape(item.number)}", *cut(name, detail, item.source or "")
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
            out.print(estimate_line(plan))
        out.print(plan_summary(plan))

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
        self.human.print(plan_summary(plan))

    def saved_plan(self, saved: SavedPlan, *, path: Path, details: bool, limit: int = 10) -> None:
        """A saved plan as ``plan`` showed it when it was made (from the file alone: no manifest, no state)."""
        render_saved_plan(self.human, saved, path=path, details=details, limit=limit, automation=self.automation)

    def confirm(self, count: int) -> bool:
        self.err.print(f"\nDo you want to send [bold]{count}[/] fax(es)? Only 'yes' will be accepted.")
        try:
            answer = self.err.input("  Enter a value: ")
        except EOFError:
            return False
        return answer.strip() == "yes"

    # --- apply ---------------------------------------------------------------------------------

    def progress(self, total: int) -> ApplyProgress:
        return ApplyProgress(self.err, total, plain_lines=self.automation)

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
            f"[bold]{escape(number)}[/] · [{STATUS_STYLE.get(status, '')}]{status}[/] · {len(attempts)} attempt(s)"
            + (f" · expired at {record['expired_at']}" if record.get("expired_at") else "")
        )
        if attempts:
            self.human.print(attempt_rows(attempts))

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
            table.add_row(f"[{STATUS_STYLE.get(status, '')}]{status}[/]", str(count))
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
            texts[0].stylize(STATUS_STYLE.get(str(row["status"]), ""))
            detail.add_row(escape(str(row["number"])), *texts)
        out.print(detail)
        if not details and total > len(rows):
            out.print(f"[dim]… {total - len(rows)} more (--details lists all)[/]")


__all__ = ["ApplyProgress", "Output"]
