"""The ``faxops`` command: parse arguments, call the library, render, return an exit code.

Exit codes (Terraform's where it has one):
0 success · 1 error · 2 changes pending (``plan --detailed-exitcode``) · 3 state locked ·
4 saved plan stale · 5 unknown outcomes held for a person · 130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from faxops import __version__
from faxops.errors import (
    ApprovalError,
    FaxopsError,
    InputError,
    InterruptedRun,
    Problem,
    StalePlanError,
    StateLockedError,
    UnknownOutcomesError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_CODES: dict[type[FaxopsError], int] = {
    StateLockedError: 3,
    StalePlanError: 4,
    UnknownOutcomesError: 5,
    InterruptedRun: 130,
}
PLAN_KIND = "faxops-plan"


def exit_code(exc: FaxopsError) -> int:
    if isinstance(exc, InterruptedRun) and exc.signal_name == "SIGTERM":
        return 143
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_ERROR


def _duration(text: str) -> float:
    from faxops.fields import parse_duration

    try:
        return float(parse_duration(text).total_seconds())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faxops",
        description="Declarative fax campaigns: plan what would be sent, apply it exactly once, record every job.",
    )
    parser.add_argument("--version", action="version", version=f"faxops {__version__}")
    parser.add_argument("--no-color", action="store_true", help="plain output (also: NO_COLOR=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check manifests: schema, files, documents, numbers, secrets")
    p.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    p.add_argument("--strict", action="store_true", help="treat warnings (e.g. invalid list rows) as errors")

    p = sub.add_parser("plan", help="show what apply would send")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON document")
    p.add_argument("--out", type=Path, metavar="FILE", help="save the plan for `faxops apply FILE`")
    p.add_argument("--details", action="store_true", help="list every recipient, not the first of each group")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there is something to send")

    p = sub.add_parser("apply", help="send what the plan says, recording every job")
    p.add_argument("target", type=Path, metavar="MANIFEST|PLANFILE")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--parallelism", type=int, metavar="N", help="submissions in flight (default: schedule.concurrency)")
    p.add_argument(
        "--lock-timeout",
        type=_duration,
        default=0.0,
        metavar="DURATION",
        help="wait this long for the state lock (e.g. 30s)",
    )
    p.add_argument("--details", action="store_true", help="list every recipient of the plan")

    p = sub.add_parser("status", help="show the recorded state (no network)")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--json", action="store_true")
    p.add_argument("--details", action="store_true", help="list every recipient")

    p = sub.add_parser("reconcile", help="settle sends whose outcome is unknown by asking the provider")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("resolve", help="decide a send of unknown outcome that the provider cannot settle")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("number", metavar="NUMBER", help="the recipient, as E.164 (+4930...)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--sent", metavar="JOB_ID", help="it was sent: record this job ID")
    how.add_argument("--not-sent", action="store_true", help="it was not sent: the next apply sends it")
    p.add_argument("--note", default="", help="why you know (kept in the lockfile's audit trail)")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("force-unlock", help="remove a state lock left by a process that is gone")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("lock_id", metavar="LOCK_ID")

    sub.add_parser("schema", help="print the JSON schema of campaign manifests")

    p = sub.add_parser("simulate", help="run a loopback simulator of a provider API (try faxops without an account)")
    p.add_argument("provider", metavar="TYPE", help="provider type, e.g. retarus")
    p.add_argument("--port", type=int, default=8025, help="port on 127.0.0.1 (default 8025)")
    p.add_argument(
        "--transmit-seconds",
        type=float,
        default=None,
        metavar="S",
        help="how long a fax takes from acceptance to its final status (default 35)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from faxops.output import Output

    output = Output(color=not args.no_color, json_mode=getattr(args, "json", False))
    try:
        return int(_COMMANDS[args.command](args, output))
    except FaxopsError as exc:
        output.error(exc)
        return exit_code(exc)
    except KeyboardInterrupt:
        output.err.print("Interrupted.")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # a bug: short message for the user, the traceback for us
        log = _debug_log(exc)
        output.err.print(f"[bold red]Internal error:[/] {type(exc).__name__}: {exc}")
        output.err.print(f"[dim]The traceback is in {log}; please attach it to a bug report.[/]")
        return EXIT_ERROR


def _debug_log(exc: BaseException) -> Path:
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "faxops"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(tempfile.gettempdir())
    path = directory / "debug.log"
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(traceback.format_exception(exc)))
    return path


# --- commands ------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import check_recipients, cpu_workers, open_campaign

    failed = False
    for path in args.manifests:
        try:
            campaign = open_campaign(path)
            problems, valid = check_recipients(campaign, cpu_workers())
            problems = campaign.warnings + problems
        except InputError as exc:
            problems = exc.problems or [Problem(exc.message, file=path)]
            campaign, valid = None, 0
        errors = [p for p in problems if p.severity != "warning"]
        warnings = [p for p in problems if p.severity == "warning"]
        output.problems(errors)
        output.problems(warnings[:100])
        if len(warnings) > 100:
            output.err.print(f"[yellow]… and {len(warnings) - 100} more warnings[/]")
        if errors or (args.strict and warnings):
            failed = True
            output.err.print(f"[red]✗ {path}: {len(errors)} error(s), {len(warnings)} warning(s)[/]")
        elif campaign is not None:
            pages = campaign.pages_per_fax
            output.line(
                f"✓ {path}: campaign {campaign.name} is valid: {valid} row(s) with a valid number, "
                f"{len(campaign.documents)} document(s) ({pages} page(s) per fax), provider "
                f"{campaign.provider.name}" + (f", {len(warnings)} warning(s)" if warnings else "")
            )
    return EXIT_ERROR if failed else EXIT_OK


def cmd_plan(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import cpu_workers, open_campaign
    from faxops.plan import plan_json
    from faxops.state import load_state

    campaign = open_campaign(args.manifest)
    state = load_state(campaign.paths)
    plan = campaign.plan(state, cpu_workers())
    output.problems(campaign.warnings[:20])
    if args.json:
        output.json(orjson.dumps(plan_json(plan)).decode())
    else:
        output.plan(plan, provider=campaign.provider.name, details=args.details)
        if not plan.has_changes:
            output.line("No changes. Nothing to send.", style="green")
    if args.out:
        doc = plan_json(
            plan,
            extra={
                "kind": PLAN_KIND,
                "manifest": str(args.manifest.resolve()),
                "inputs": campaign.input_digests(),
                "state": state.fingerprint(),
            },
        )
        from faxops.state.files import atomic_write

        atomic_write(args.out, [orjson.dumps(doc, option=orjson.OPT_INDENT_2)], mode=0o600)
        output.note(f"Saved the plan to {args.out}; run `faxops apply {args.out}` to execute exactly it.")
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _read_saved_plan(path: Path) -> dict[str, Any] | None:
    """The saved plan at ``path``, or None when ``path`` is not one (a manifest)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1)
    except OSError:
        return None
    if head != b"{":
        return None
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        raise InputError(f"{path}: not a valid saved plan (invalid JSON)") from None
    if not isinstance(doc, dict) or doc.get("kind") != PLAN_KIND:
        raise InputError(f"{path}: not a saved plan (make one with `faxops plan MANIFEST --out FILE`)")
    return doc


def _check_inputs(saved: dict[str, Any], current: dict[str, str]) -> None:
    before: dict[str, str] = saved.get("inputs") or {}
    changed = sorted(k for k in set(before) | set(current) if before.get(k) != current.get(k))
    if changed:
        raise StalePlanError(
            f"the saved plan is stale: {', '.join(changed)} changed since it was made",
            hint="run `faxops plan` again and review the new plan",
        )


class _Signals:
    """First SIGINT/SIGTERM: stop starting new sends. Second: abandon the ones in flight."""

    def __init__(self, output: Any) -> None:
        self.stop = threading.Event()
        self.received: str | None = None
        self.output = output
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        self.stop.set()
        self.output.err.print(
            "\n[yellow]Interrupt received: finishing the faxes in flight and saving state "
            "(press Ctrl-C again to abandon them; they will be reconciled next run).[/]"
        )

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def cmd_apply(args: argparse.Namespace, output: Any) -> int:
    from faxops.apply import ApplyOptions, execute
    from faxops.campaign import cpu_workers, open_campaign
    from faxops.plan import Action
    from faxops.reconcile import reconcile
    from faxops.state import StateWriter

    saved = _read_saved_plan(args.target)
    manifest = Path(saved["manifest"]) if saved else args.target
    campaign = open_campaign(manifest)
    if saved:
        _check_inputs(saved, campaign.input_digests())
    writer = StateWriter(campaign.paths, campaign.name, operation="apply", lock_timeout=args.lock_timeout)
    if writer.lock.stale is not None:
        output.note(
            f"Note: the previous {writer.lock.stale.describe()} ended without releasing it; its journal was recovered."
        )
    held = 0
    try:
        state = writer.state()
        if saved and state.fingerprint() != saved.get("state"):
            raise StalePlanError(
                "the saved plan is stale: the recorded state changed since it was made",
                hint="run `faxops plan` again and review the new plan",
            )
        if any(s.status == "pending" for s in state.summaries.values()):
            if saved:
                raise StalePlanError("the state holds sends of unknown outcome; run `faxops reconcile` and plan again")
            rec = reconcile(campaign, writer, state)
            output.reconcile(rec)
            held = rec.held_count
            state = writer.state()
        plan = campaign.plan(state, cpu_workers())
        if saved:
            saved_key = [
                (a["action"], a["number"], a.get("attempt"))
                for a in saved.get("actions", [])
                if a["action"] in (Action.SEND, Action.RETRY)
            ]
            if saved_key != plan.submit_key():
                raise StalePlanError("the saved plan no longer matches what would be sent; plan again")
            output.line(output.plan_summary(plan).replace("[bold]", "").replace("[/]", ""))
        else:
            output.problems(campaign.warnings[:20])
            output.plan(plan, provider=campaign.provider.name, details=args.details)
        if not plan.to_submit:
            output.line("No changes. Nothing to send.", style="green")
            writer.close()
            return _held_exit(held)
        if not saved and not args.auto_approve:
            if not output.interactive:
                raise ApprovalError(
                    "apply needs confirmation but there is no terminal to ask; pass --auto-approve "
                    "or apply a saved plan"
                )
            if not output.confirm(len(plan.to_submit)):
                raise ApprovalError("Apply cancelled; nothing was sent.")
        concurrency = args.parallelism or campaign.loaded.model.schedule.concurrency
        with _Signals(output) as signals, output.progress(len(plan.to_submit)) as progress:
            options = ApplyOptions(concurrency=concurrency, stop=signals.stop, on_result=progress)
            report = execute(campaign, plan, writer, options)
        del plan  # a million planned actions need not outlive the sends, least of all through the fold
        if signals.received:
            report.stopped = report.stopped or f"interrupted ({signals.received})"
    except BaseException:
        _close_quietly(writer, output)
        raise
    finally:
        campaign.provider.close()
    try:
        writer.close(campaign.applied_with())
    except FaxopsError:
        writer.abandon()
        raise
    output.apply_report(report)
    output.note(f"State saved to {campaign.paths.lockfile}")
    if signals.received:
        raise InterruptedRun("apply was interrupted; every fax sent so far is recorded", signal_name=signals.received)
    if report.stopped or report.errors:
        return EXIT_ERROR
    return _held_exit(held + report.outcomes["unknown"])


def _held_exit(held: int) -> int:
    if held:
        raise UnknownOutcomesError(
            f"{held} recipient(s) have a send of unknown outcome that the provider cannot settle",
            hint="see `faxops plan`; decide each with `faxops resolve` once you know whether it was sent",
        )
    return EXIT_OK


def _close_quietly(writer: Any, output: Any) -> None:
    try:
        writer.close()
    except FaxopsError as exc:
        output.error(exc)
        writer.abandon()


def cmd_status(args: argparse.Namespace, output: Any) -> int:
    from faxops.manifest import load_manifest
    from faxops.state import StatePaths, read_records
    from faxops.state.lockfile import read_header
    from faxops.state.records import counted_attempts

    loaded = load_manifest(args.manifest)
    paths = StatePaths.for_manifest(args.manifest)
    header = read_header(paths.lockfile)
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    total = 0
    limit = None if (args.details or args.json) else 50

    def row(number: str, record: dict[str, Any]) -> dict[str, Any]:
        last = (record.get("attempts") or [{}])[-1]
        return {
            "number": number,
            "status": record.get("status"),
            "attempts": counted_attempts(record),
            "job_id": last.get("job_id"),
            "raw_status": last.get("raw_status"),
            "reason": last.get("reason"),
            "updated_at": last.get("updated_at") or last.get("submitted_at"),
        }

    def records() -> Iterator[dict[str, Any]]:
        nonlocal total
        for number, record in read_records(paths):
            total += 1
            counts[str(record.get("status"))] += 1
            yield row(number, record)

    if args.json:
        sys.stdout.write('{"format_version": 1, "campaign": ' + orjson.dumps(loaded.name).decode())
        sys.stdout.write(', "lineage": ' + orjson.dumps(header.lineage if header else None).decode())
        sys.stdout.write(', "serial": ' + str(header.serial if header else 0) + ', "recipients": [')
        for i, item in enumerate(records()):
            sys.stdout.write(("," if i else "") + "\n  " + orjson.dumps(item).decode())
        sys.stdout.write('\n], "counts": ' + orjson.dumps(dict(sorted(counts.items()))).decode() + "}\n")
        return EXIT_OK
    for item in records():
        if limit is None or len(rows) < limit:
            rows.append(item)
    output.status(loaded.name, header.to_json() if header else None, rows, counts, total, details=args.details)
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import open_campaign
    from faxops.reconcile import reconcile
    from faxops.state import StateWriter

    campaign = open_campaign(args.manifest)
    writer = StateWriter(campaign.paths, campaign.name, operation="reconcile", lock_timeout=args.lock_timeout)
    try:
        report = reconcile(campaign, writer, writer.state())
    except BaseException:
        _close_quietly(writer, output)
        raise
    finally:
        campaign.provider.close()
    writer.close()
    output.reconcile(report)
    if not (report.found or report.not_sent or report.held):
        output.line("Nothing to reconcile: every recorded send has a known outcome.")
    return _held_exit(report.held_count)


def cmd_resolve(args: argparse.Namespace, output: Any) -> int:
    from faxops.manifest import load_manifest
    from faxops.state import StatePaths, StateWriter
    from faxops.state.journal import now_iso
    from faxops.state.lock import LockInfo

    loaded = load_manifest(args.manifest)
    writer = StateWriter(
        StatePaths.for_manifest(args.manifest), loaded.name, operation="resolve", lock_timeout=args.lock_timeout
    )
    try:
        summary = writer.state().summaries.get(args.number)
        if summary is None or summary.status != "pending":
            what = "is not in the recorded state" if summary is None else f"is {summary.status}, not unknown"
            raise InputError(
                f"{args.number} {what}; only sends of unknown outcome can be resolved",
                hint="`faxops plan` lists them under `? unknown`",
            )
        info: LockInfo | None = writer.lock.info
        writer.record(
            {
                "t": "resolve",
                "ref": summary.reference,
                "number": args.number,
                "sent": bool(args.sent),
                "job_id": args.sent,
                "note": args.note,
                "by": f"{info.who}@{info.host}" if info else "?",
                "at": now_iso(),
            }
        )
    except BaseException:
        _close_quietly(writer, output)
        raise
    writer.close()
    verdict = f"sent as job {args.sent}" if args.sent else "not sent; the next apply sends it"
    output.line(f"Recorded {args.number}: {verdict}.")
    return EXIT_OK


def cmd_force_unlock(args: argparse.Namespace, output: Any) -> int:
    from faxops.state import StatePaths
    from faxops.state.lock import force_unlock

    info = force_unlock(StatePaths.for_manifest(args.manifest).lock, args.lock_id)
    output.line(f"Removed {info.describe()}.")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, output: Any) -> int:
    from faxops.manifest import campaign_schema

    output.json(orjson.dumps(campaign_schema(), option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace, output: Any) -> int:
    from faxops.testing import SIMULATORS

    if args.provider not in SIMULATORS:
        raise InputError(f"no simulator for {args.provider!r} (there are: {', '.join(sorted(SIMULATORS))})")
    sim = SIMULATORS[args.provider](port=args.port, transmit_seconds=args.transmit_seconds).start()
    output.line(f"{args.provider} simulator listening on {sim.url}")
    output.line(f"Point a manifest at it with `provider: {{type: {args.provider}, base_url: {sim.url}, ...}}`;")
    output.line("see campaigns/ for an example per provider. Control it under /_sim/ (faults, outcomes, advance).")
    output.line("Press Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return EXIT_OK


_COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "status": cmd_status,
    "reconcile": cmd_reconcile,
    "resolve": cmd_resolve,
    "force-unlock": cmd_force_unlock,
    "schema": cmd_schema,
    "simulate": cmd_simulate,
}
