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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO, cast
from zoneinfo import ZoneInfo

import orjson

from faxops import __version__, secrets
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


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-24T09:00Z") from None
    return moment  # a naive time is read in the campaign's time zone, once the manifest is loaded


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be 1 or more")
    return value


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("true or false")


def _refresh_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--refresh",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="ask the provider for delivery status first (default true; --refresh=false to skip)",
    )


class UsageError(Exception):
    """A command line argparse refused: shown with the usage of the (sub)command it belongs to."""

    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is exit 1, not 2.

    argparse exits 2, which is also ``plan --detailed-exitcode``'s "changes pending": a CI script could
    not tell a typo from work to do (Terraform exits 1 on usage errors too). Raising instead of exiting
    also lets ``main`` return the code like every other error. Subparsers inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.format_usage(), f"{self.prog}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="faxops",
        description="Declarative fax campaigns: plan what would be sent, apply it exactly once, record every job.",
    )
    parser.add_argument("--version", action="version", version=f"faxops {__version__}")
    parser.add_argument("--no-color", action="store_true", help="plain output (also: NO_COLOR=1)")
    parser.add_argument(
        "--allow-outside",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="let the manifest name files under PATH, outside its own folder (repeatable; also "
        "FAXOPS_ALLOW_OUTSIDE=PATH:PATH)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check manifests: schema, files, documents, numbers, secrets")
    p.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    p.add_argument("--strict", action="store_true", help="treat warnings (e.g. invalid list rows) as errors")
    p.add_argument(
        "--only-manifests", action="store_true", help="skip YAML files without a top-level campaign: key (hooks)"
    )

    p = sub.add_parser("plan", help="show what apply would send (or, given a saved plan, show it)")
    p.add_argument("manifest", type=Path, metavar="MANIFEST|PLANFILE")
    _refresh_flag(p)
    p.add_argument(
        "--at",
        type=_moment,
        metavar="TIME",
        help="plan as if it were TIME (ISO 8601; without an offset, in schedule.timezone, else UTC)",
    )
    _format_flags(p)
    p.add_argument("--out", type=Path, metavar="FILE", help="save the plan for `faxops apply FILE`")
    p.add_argument("--details", action="store_true", help="list every recipient, not the first of each group")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there is something to send")

    p = sub.add_parser("show", help="print a saved plan (made with `plan --out FILE`)")
    p.add_argument("planfile", type=Path, metavar="PLANFILE")
    _format_flags(p)
    p.add_argument("--details", action="store_true", help="list every recipient, not the first of each group")

    p = sub.add_parser("apply", help="send what the plan says, recording every job")
    p.add_argument("target", type=Path, metavar="MANIFEST|PLANFILE")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--parallelism", type=_positive, metavar="N", help="submissions in flight (default: schedule.concurrency)"
    )
    p.add_argument(
        "--lock-timeout",
        type=_duration,
        default=0.0,
        metavar="DURATION",
        help="wait this long for the state lock (e.g. 30s)",
    )
    p.add_argument("--details", action="store_true", help="list every recipient of the plan")
    _refresh_flag(p)
    p.add_argument(
        "--resend",
        action="append",
        default=[],
        metavar="NUMBER",
        help="force a new attempt for this recipient (repeatable; needs --reason; never overrides suppression)",
    )
    p.add_argument("--reason", metavar="TEXT", help="why --resend is needed (recorded in the lockfile)")
    p.add_argument("--max-sends", type=int, metavar="N", help="refuse the run if it would send more faxes")
    p.add_argument("--max-pages", type=int, metavar="N", help="refuse the run if it would send more pages")
    p.add_argument(
        "--wait",
        action="store_true",
        help="stay running and send deferred recipients as their send windows open (Ctrl-C stops safely)",
    )
    p.add_argument(
        "--receipt",
        type=Path,
        metavar="FILE",
        help="write a receipt of the run (counts, plan digest, who, CI run; numbers masked) to FILE",
    )

    p = sub.add_parser("refresh", help="ask the provider for the status of every fax not final yet")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--force", action="store_true", help="poll even if the provider's minimum interval has not passed")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("cancel", help="cancel queued faxes where the provider supports it")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("numbers", nargs="*", metavar="NUMBER", help="recipients to cancel (default: with --all, every one)")
    p.add_argument("--all", action="store_true", help="cancel every queued fax of the campaign")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("report", help="render every reporting target of the manifest now")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--format", choices=("json", "csv", "html"), help="print one report to stdout instead")
    p.add_argument("--mask-numbers", action="store_true", help="with --format: mask the numbers")

    p = sub.add_parser("webhook", help="receive provider status pushes")
    hook = p.add_subparsers(dest="webhook_command", metavar="SUBCOMMAND", required=True)
    p = hook.add_parser("serve", help="listen for status pushes and record them (FAX.PLUS, Retarus, generic JSON)")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")

    p = sub.add_parser("suppress", help="manage do-not-fax lists")
    sup = p.add_subparsers(dest="suppress_command", metavar="SUBCOMMAND", required=True)
    p = sup.add_parser("add", help="add a number to a suppression list (default: the global list)")
    p.add_argument("number", metavar="NUMBER")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (kept with the entry)")
    p.add_argument("--list", type=Path, metavar="FILE", help="the list to append to (default: the global list)")
    p.add_argument("--region", metavar="CC", help="region for a national number, e.g. DE")

    p = sub.add_parser("status", help="show the recorded state (no network)")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("number", nargs="?", metavar="NUMBER", help="one recipient: every attempt, job ID and status")
    p.add_argument("--json", action="store_true")
    p.add_argument("--details", action="store_true", help="list every recipient")

    p = sub.add_parser("reconcile", help="settle sends whose outcome is unknown by asking the provider")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("resolve", help="decide a send of unknown outcome that the provider cannot settle")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("number", metavar="NUMBER", help="the recipient, read as the manifest's numbers are (+49 30 ...)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--sent", metavar="JOB_ID", help="it was sent: record this job ID")
    how.add_argument("--not-sent", action="store_true", help="it was not sent: the next apply sends it")
    p.add_argument("--note", default="", help="why you know (kept in the lockfile's audit trail)")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("force-unlock", help="remove a state lock left by a process that is gone")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("lock_id", metavar="LOCK_ID")

    sub.add_parser("schema", help="print the JSON schema of campaign manifests")

    p = sub.add_parser("fmt", help="rewrite manifests in the canonical layout (key order, indentation, quoted numbers)")
    p.add_argument(
        "manifests", nargs="*", type=Path, metavar="MANIFEST", help="files or folders (default: the current folder)"
    )
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 and list the files that would change")
    p.add_argument(
        "--only-manifests", action="store_true", help="skip YAML files without a top-level campaign: key (hooks)"
    )

    p = sub.add_parser("init", help="create a new campaign folder to start from")
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument("--provider", default="sandbox", metavar="TYPE", help="provider type (default: sandbox)")
    p.add_argument(
        "--ci",
        choices=("github", "gitlab", "none"),
        default="github",
        help="the CI pipeline to add (default: github)",
    )

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
    _global_options_everywhere(parser)
    return parser


def _format_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default=None,
        help="text (default), json (one document), or markdown (a pull-request comment, at most 60,000 characters)",
    )
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument(
        "--reveal-numbers", action="store_true", help="markdown: show fax numbers in full (masked by default)"
    )


def _output_format(args: argparse.Namespace) -> str:
    """``--format``, with ``--json`` kept as the alias it was before ``--format`` existed."""
    if args.json and args.format not in (None, "json"):
        raise InputError(f"--json and --format {args.format} disagree; pass one of them")
    return "json" if args.json else (args.format or "text")


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept the global options after the subcommand too (``faxops plan X --no-color``), as people type them.

    SUPPRESS as the default keeps a subcommand that did not see the option from resetting the value
    given before the subcommand.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in {id(p): p for p in action.choices.values()}.values():
                child.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="plain output")
                child.add_argument(
                    "--allow-outside",
                    action="append",
                    type=Path,
                    default=argparse.SUPPRESS,
                    metavar="PATH",
                    help="let the manifest name files under PATH, outside its own folder (repeatable)",
                )
                _global_options_everywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc.usage}{exc.message}\n")
        return EXIT_ERROR
    # Everything printed, by rich or written directly, passes the secret scrubber on its way out.
    secrets.clear()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, secrets.ScrubbedStream(stdout))
    sys.stderr = cast(TextIO, secrets.ScrubbedStream(stderr))
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _run(args: argparse.Namespace) -> int:
    from faxops.automation import in_automation
    from faxops.output import Output

    document = getattr(args, "json", False) or getattr(args, "format", None) in ("json", "markdown")
    output = Output(
        color=not getattr(args, "no_color", False), json_mode=document, automation=in_automation(os.environ)
    )
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
        fh.write(secrets.scrub("".join(traceback.format_exception(exc))))
    return path


# --- commands ------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import check_recipients, cpu_workers, open_campaign
    from faxops.fmt import find_manifests

    failed = False
    for path in (
        find_manifests(args.manifests, only_manifests=args.only_manifests) if args.only_manifests else args.manifests
    ):
        try:
            campaign = open_campaign(path, allow_outside=args.allow_outside)
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


def _needs_refresh(campaign: Any, state: Any) -> bool:
    from faxops.webhook import inbox_path

    inbox = inbox_path(campaign.paths)
    if inbox.exists() and inbox.stat().st_size:
        return True
    return campaign.provider.reports_status and any(s.status in ("queued", "sending") for s in state.summaries.values())


def _refresh_before_plan(campaign: Any, output: Any) -> bool:
    """plan's refresh, never waiting for a lock another run holds. True when it ran."""
    from faxops.state import StateWriter
    from faxops.tracking import refresh

    try:
        writer = StateWriter(campaign.paths, campaign.name, operation="refresh")
    except StateLockedError as exc:
        output.note(f"Not refreshed: {exc.message}")
        return False
    try:
        report = refresh(campaign, writer)
    except BaseException:
        _close_quietly(writer, output)
        raise
    writer.close()
    output.refresh(report, brief=True)
    return True


def cmd_show(args: argparse.Namespace, output: Any) -> int:
    from faxops import planfile

    fmt = _output_format(args)
    saved = planfile.load(args.planfile)
    if fmt == "json":
        output.json(orjson.dumps(saved.model_dump(mode="json")).decode())
    elif fmt == "markdown":
        from faxops import render_markdown

        view = render_markdown.view_of_saved(saved)
        output.document(render_markdown.render(view, reveal_numbers=args.reveal_numbers))
    else:
        output.saved_plan(saved, path=args.planfile, details=args.details)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, output: Any) -> int:
    from faxops import planfile
    from faxops.campaign import cpu_workers, open_campaign
    from faxops.changes import input_changes
    from faxops.plan import plan_json
    from faxops.state import load_state

    fmt = _output_format(args)
    if planfile.looks_like_plan(args.manifest):
        if args.out or args.at:
            raise InputError(f"{args.manifest} is a saved plan: --out and --at apply to a manifest")
        args.planfile = args.manifest
        return cmd_show(args, output)
    may_refresh = args.refresh and args.at is None
    campaign = open_campaign(args.manifest, secrets=may_refresh, allow_outside=args.allow_outside)
    state = load_state(campaign.paths)
    try:
        # Only when something is open: a warm plan of a million delivered recipients reads the state once.
        if may_refresh and _needs_refresh(campaign, state) and _refresh_before_plan(campaign, output):
            state = load_state(campaign.paths)
    finally:
        campaign.provider.close()
    at = args.at
    if at is not None and at.tzinfo is None:
        # Read as schedule.start_at is: in the campaign's time zone when it fixes one, else UTC.
        zone = campaign.loaded.model.schedule.timezone
        at = at.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    plan = campaign.plan(state, cpu_workers(), now=at)
    changes = input_changes(plan, campaign.inputs_by_kind(), _applied_with(campaign))
    output.problems(campaign.warnings[:20])
    if fmt == "json":
        output.json(orjson.dumps(plan_json(plan)).decode())
    elif fmt == "markdown":
        from faxops import render_markdown

        view = render_markdown.view_of_plan(
            plan, provider=campaign.provider.name, manifest=_shown_path(args.manifest), changes=changes
        )
        output.document(render_markdown.render(view, reveal_numbers=args.reveal_numbers))
    else:
        output.plan(plan, provider=campaign.provider.name, details=args.details)
        output.planned_for(plan, campaign.loaded.model.schedule.timezone)
        if not plan.has_changes:
            output.line("No changes. Nothing to send.", style="green")
    if args.out:
        from faxops import planfile
        from faxops.state.files import atomic_write

        doc = planfile.dump(
            plan,
            plan_path=args.out,
            manifest=args.manifest,
            inputs=campaign.input_digests(),
            state=planfile.state_ref(campaign.name, campaign.paths.lockfile, state.fingerprint()),
            context={"provider": campaign.provider.name, "changes": changes.to_json()},
        )
        atomic_write(args.out, [doc], mode=0o600)
        output.hint(
            f"Saved the plan to {args.out}; run `faxops apply {args.out}` to execute exactly it.",
            f"Saved the plan to {args.out}: keep it as an artifact; the apply step runs `faxops apply {args.out}`.",
        )
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _applied_with(campaign: Any) -> dict[str, Any] | None:
    """What the last apply recorded about its inputs (None: the campaign was never applied)."""
    from faxops.state.lockfile import read_header

    header = read_header(campaign.paths.lockfile)
    return header.applied_with if header is not None else None


def _shown_path(path: Path) -> str:
    """A manifest path as a comment shows it: relative to the working directory (the repository in CI)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


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

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The handlers in place before, e.g. while asking for confirmation, when there is nothing to finish."""
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()


def _number_arg(text: str, loaded: Any, what: str = "") -> str:
    """A number typed on the command line, read like the manifest's (its default_region), as E.164."""
    from faxops.recipients import normalise

    number, why = normalise(text, loaded.model.recipients.default_region)
    if number is None:
        raise InputError(f"{what}{text}: {why}")
    return number


def _resend_numbers(campaign: Any, numbers: Sequence[str], reason: str | None) -> dict[str, str]:
    """``--resend`` numbers in E.164, each checked against the campaign."""
    if not numbers:
        return {}
    if not reason or not reason.strip():
        raise InputError("--resend needs --reason TEXT: a forced resend is recorded with why it was needed")
    out = {}
    for text in numbers:
        number = _number_arg(text, campaign.loaded, "--resend ")
        if number in campaign.suppressed:
            raise InputError(
                f"--resend {number}: the number is suppressed ({campaign.suppressed[number]}); "
                "suppression is never overridden, nothing was sent"
            )
        out[number] = reason.strip()
    return out


def _refuse_deferred_resends(campaign: Any, plan: Any, state: Any, resend: Mapping[str, str]) -> None:
    """A ``--resend`` that cannot go now is an error saying why and when, before anything is sent.

    Without it, apply printed "No changes" and exited 0: the operator believed the fax had gone.
    """
    from faxops.plan import Action
    from faxops.state.journal import parse_iso

    min_gap = campaign.rules().policy.min_gap
    lines = []
    for action in plan.groups[Action.DEFER]:
        if action.number not in resend or action.due is None:
            continue
        summary = state.summaries.get(action.number)
        last = parse_iso(summary.updated_at) if summary is not None else None
        when = f"{action.due.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
        if last is not None and action.due <= last + min_gap:
            why = f"its last attempt was at {last.astimezone(UTC):%H:%M:%S}Z and retry.min_gap ({min_gap}) allows "
            lines.append(f"--resend {action.number}: not sent: {why}the next attempt at {when}")
        else:
            lines.append(f"--resend {action.number}: not sent: outside its send window, which opens at {when}")
    if lines:
        raise InputError(
            "; ".join(lines) + ". Nothing was sent.",
            hint="run the same command again then, or add --wait to wait for it",
        )


def _guards(campaign: Any, args: argparse.Namespace) -> Any:
    from faxops.plan import Guards

    budget = campaign.loaded.model.budget
    return Guards(
        max_sends=args.max_sends if args.max_sends is not None else budget.max_sends,
        max_pages=args.max_pages if args.max_pages is not None else budget.max_pages,
        max_cost=budget.max_cost,
    )


def cmd_apply(args: argparse.Namespace, output: Any) -> int:
    from faxops import clock, planfile
    from faxops.apply import ApplyOptions, ApplyReport, execute, record_expired
    from faxops.campaign import cpu_workers, open_campaign
    from faxops.plan import Action, guard_problems, plan_json
    from faxops.receipt import ReceiptLog, plan_digest
    from faxops.reconcile import reconcile
    from faxops.state import StateWriter
    from faxops.state.lockfile import read_header
    from faxops.tracking import refresh

    saved = planfile.load(args.target) if planfile.looks_like_plan(args.target) else None
    manifest = planfile.manifest_of(saved, args.target) if saved else args.target
    campaign = open_campaign(manifest, allow_outside=args.allow_outside)
    if saved:
        planfile.check_bound(saved, campaign.name, campaign.paths.lockfile)
        planfile.check_inputs(saved, campaign.input_digests())
        if args.resend or args.wait:
            raise InputError("--resend and --wait apply to a manifest, not to a saved plan")
    resend = _resend_numbers(campaign, args.resend, args.reason)
    guards = _guards(campaign, args)
    before = read_header(campaign.paths.lockfile)
    log = ReceiptLog()
    if saved:
        log.plan_digest, log.plan_source = plan_digest(args.target.read_bytes()), f"saved plan {args.target.name}"
    writer = StateWriter(campaign.paths, campaign.name, operation="apply", lock_timeout=args.lock_timeout)
    if writer.lock.stale is not None:
        output.note(
            f"Note: the previous {writer.lock.stale.describe()} ended without releasing it; its journal was recovered."
        )
    held = 0
    total = ApplyReport()
    signals = _Signals(output)
    first = True
    try:
        with signals:
            while True:
                state = writer.state(detail=resend)
                if saved:
                    planfile.check_state(saved, state.fingerprint())
                if not saved and args.refresh and _needs_refresh(campaign, state):
                    output.refresh(refresh(campaign, writer, stop=signals.stop), brief=True)
                    state = writer.state()
                if any(s.status == "pending" for s in state.summaries.values()):
                    if saved:
                        raise StalePlanError(
                            "the state holds sends of unknown outcome; run `faxops reconcile` and plan again"
                        )
                    rec = reconcile(campaign, writer, state)
                    output.reconcile(rec)
                    held = rec.held_count
                    state = writer.state()
                plan = campaign.plan(state, cpu_workers(), resend=resend)
                missing = sorted(
                    n for n in resend if not any(a.number == n for a in plan.to_submit + plan.groups[Action.DEFER])
                )
                if resend and first and not args.wait:
                    _refuse_deferred_resends(campaign, plan, state, resend)
                if missing and first:
                    raise InputError(
                        f"--resend {', '.join(missing)}: not a recipient of this campaign that can be sent "
                        "(see `faxops plan`: unknown outcomes must be resolved first)"
                    )
                if plan.expired:
                    record_expired(writer, plan.expired)
                if saved and first:
                    if saved.submit_key() != plan.submit_key():
                        raise StalePlanError("the saved plan no longer matches what would be sent; plan again")
                    output.line(output.plan_summary(plan).replace("[bold]", "").replace("[/]", ""))
                    output.problems(w for w in campaign.warnings if w.file == campaign.paths.lockfile)
                elif first:
                    output.problems(campaign.warnings[:20])
                    output.plan(plan, provider=campaign.provider.name, details=args.details)
                    log.plan_digest = plan_digest(orjson.dumps(plan_json(plan), option=orjson.OPT_SORT_KEYS))
                if first:
                    problems = guard_problems(plan, guards, include_deferred=args.wait)
                    if problems:
                        raise ApprovalError(
                            "the run would exceed a budget guard: " + "; ".join(problems) + ". Nothing was sent.",
                            hint="narrow the campaign, or raise the guard (--max-sends, --max-pages, budget:)",
                        )
                    if plan.campaign_stop and plan.to_submit:
                        output.note("apply stops at the first document or account failure.")
                    if (
                        not saved
                        and not args.auto_approve
                        and (plan.to_submit or (args.wait and plan.count(Action.DEFER)))
                    ):
                        if not output.interactive:
                            raise ApprovalError(
                                "apply needs confirmation but "
                                + (
                                    "runs in automation (CI or FAXOPS_IN_AUTOMATION is set)"
                                    if output.automation
                                    else "there is no terminal to ask"
                                )
                                + "; pass --auto-approve or apply a saved plan; nothing was sent"
                            )
                        count = len(plan.to_submit) + (plan.count(Action.DEFER) if args.wait else 0)
                        with signals.paused():  # Ctrl-C at the prompt quits at once: nothing is in flight
                            confirmed = output.confirm(count)
                        if not confirmed:
                            raise ApprovalError("Apply cancelled; nothing was sent.")
                first = False
                if plan.to_submit:
                    concurrency = args.parallelism or campaign.loaded.model.schedule.concurrency
                    rate = campaign.loaded.model.schedule.rate
                    log.planned(plan.pages, plan.cost, plan.currency)
                    with output.progress(len(plan.to_submit)) as progress:

                        def on_result(result: Any, progress: Any = progress) -> None:
                            progress(result)
                            log.observe(result)

                        options = ApplyOptions(
                            concurrency=concurrency,
                            stop=signals.stop,
                            on_result=on_result,
                            per_minute=rate.per_minute if rate else None,
                            per_hour=rate.per_hour if rate else None,
                        )
                        report = execute(campaign, plan, writer, options)
                    total.merge(report)
                    for action in plan.to_submit:
                        resend.pop(action.number, None)
                    if args.wait and not (signals.stop.is_set() or total.stopped):
                        if report.outcomes["not_sent"] and not report.outcomes["accepted"]:
                            # The provider took nothing this round: do not hammer it while waiting.
                            output.note("The provider accepted nothing this round; trying again in 60 s.")
                            clock.CLOCK.sleep(60, signals.stop)
                        continue  # plan again: this round's failures may be due for a retry before the next window
                elif not total.submitted and (not args.wait or not plan.count(Action.DEFER)):
                    output.line("No changes. Nothing to send.", style="green")
                deferred = plan.groups[Action.DEFER]
                if not args.wait or not deferred or signals.stop.is_set() or total.stopped:
                    if deferred and not args.wait:
                        nxt = min(a.due for a in deferred if a.due is not None)
                        due_at = (
                            f"{len(deferred)} recipient(s) deferred; the next becomes due at "
                            f"{nxt.astimezone(UTC):%Y-%m-%d %H:%M}Z"
                        )
                        output.hint(
                            f"{due_at} (run apply again then, or use --wait).",
                            f"{due_at}: schedule a pipeline run of `faxops apply --auto-approve` then.",
                        )
                    break
                del plan
                due = min(a.due for a in deferred if a.due is not None)
                output.waiting(due, len(deferred))
                del deferred
                if not clock.CLOCK.sleep((due - clock.now()).total_seconds(), signals.stop):
                    break
    except BaseException:
        _close_quietly(writer, output)
        campaign.provider.close()
        raise
    try:
        writer.close(campaign.applied_with())
    except FaxopsError:
        writer.abandon()
        # A full disk: say what was sent and where unjournalled job IDs were rescued before the error.
        if total.submitted or total.stopped:
            output.apply_report(total)
        raise
    finally:
        campaign.provider.close()
    if signals.received:
        total.stopped = total.stopped or f"interrupted ({signals.received})"
    if total.submitted or total.stopped:
        output.apply_report(total)
    output.note(f"State saved to {campaign.paths.lockfile}")
    _report_if_due(campaign, output)
    _write_receipts(campaign, args.receipt, log, total, before, output)
    if signals.received:
        raise InterruptedRun("apply was interrupted; every fax sent so far is recorded", signal_name=signals.received)
    if total.stopped or total.errors:
        return EXIT_ERROR
    return _held_exit(held + total.outcomes["unknown"])


def _write_receipts(campaign: Any, path: Path | None, log: Any, total: Any, before: Any, output: Any) -> None:
    """``apply --receipt FILE`` and the manifest's ``receipt:`` targets, after the state is saved."""
    from faxops import receipt

    for where in receipt.write_receipts(campaign, path, log, total, before, os.environ):
        output.note(f"Receipt written to {where}")


def _report_if_due(campaign: Any, output: Any) -> None:
    """Render the reporting targets whose ``when`` has come (after apply and refresh)."""
    from faxops import reports
    from faxops.state import load_state

    targets = campaign.loaded.model.reporting
    if not any(t.when in ("final", "always") for t in targets):
        return
    plan = campaign.plan(load_state(campaign.paths), names=True)
    report = reports.build(campaign, plan)
    due = reports.due_targets(campaign, report, trigger="auto")
    if due:
        output.deliveries(reports.deliver(campaign, report, due))


def _held_exit(held: int) -> int:
    if held:
        raise UnknownOutcomesError(
            f"{held} recipient(s) have a send of unknown outcome that the provider cannot settle",
            hint="see `faxops plan`; decide each with `faxops resolve` once you know whether it was sent",
        )
    return EXIT_OK


@contextmanager
def _state_writer(campaign: Any, output: Any, operation: str, lock_timeout: float = 0.0) -> Iterator[Any]:
    """The state lock and journal for one command; folded and released whatever happens."""
    from faxops.state import StateWriter

    writer = StateWriter(campaign.paths, campaign.name, operation=operation, lock_timeout=lock_timeout)
    try:
        yield writer
    except BaseException:
        _close_quietly(writer, output)
        raise
    finally:
        campaign.provider.close()
    writer.close()


def _close_quietly(writer: Any, output: Any) -> None:
    try:
        writer.close()
    except FaxopsError as exc:
        output.error(exc)
        writer.abandon()


def cmd_status(args: argparse.Namespace, output: Any) -> int:
    from faxops.bulk import paused_gc
    from faxops.manifest import load_manifest
    from faxops.state import StatePaths, check_owner, read_raw_records, read_records
    from faxops.state.lockfile import parse_record, read_header
    from faxops.state.records import counted_attempts, settled_status

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    paths = StatePaths.for_manifest(args.manifest, loaded.name)
    header = read_header(paths.lockfile)
    check_owner(paths, header)
    if args.number:
        return _status_of_one(args, output, loaded, paths)
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
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
            "failure": last.get("failure") if record.get("status") in ("failed", "expired") else None,
            "reason": last.get("reason"),
            "updated_at": last.get("updated_at") or last.get("submitted_at"),
        }

    def account(number: str, record: dict[str, Any]) -> dict[str, Any]:
        nonlocal total
        total += 1
        counts[str(record.get("status"))] += 1
        item = row(number, record)
        if item["failure"]:
            failures[str(item["failure"])] += 1
        return item

    def records() -> Iterator[dict[str, Any]]:
        for number, record in read_records(paths):
            yield account(number, record)

    if args.json:
        sys.stdout.write('{"format_version": 1, "campaign": ' + orjson.dumps(loaded.name).decode())
        sys.stdout.write(', "lineage": ' + orjson.dumps(header.lineage if header else None).decode())
        sys.stdout.write(', "serial": ' + str(header.serial if header else 0) + ', "recipients": [')
        for i, item in enumerate(records()):
            sys.stdout.write(("," if i else "") + "\n  " + orjson.dumps(item).decode())
        sys.stdout.write('\n], "counts": ' + orjson.dumps(dict(sorted(counts.items()))).decode() + "}\n")
        return EXIT_OK
    with paused_gc():
        for number, raw in read_raw_records(paths):
            if isinstance(raw, bytes) and limit is not None and len(rows) >= limit:
                status = settled_status(raw)
                if status is not None:
                    # Past the rows shown, a settled record is only counted (it has no failure class):
                    # read off its bytes, not parsed, which is most of `status` at a million recipients.
                    total += 1
                    counts[status] += 1
                    continue
            item = account(number, raw if isinstance(raw, dict) else parse_record(paths.lockfile, raw))
            if limit is None or len(rows) < limit:
                rows.append(item)
    output.status(
        loaded.name, header.to_json() if header else None, rows, counts, total, details=args.details, failures=failures
    )
    return EXIT_OK


def _status_of_one(args: argparse.Namespace, output: Any, loaded: Any, paths: Any) -> int:
    from faxops.state import read_records

    number = _number_arg(args.number, loaded)
    record = next((r for n, r in read_records(paths) if n == number), None)
    if record is None:
        raise InputError(f"{number} has no record in {paths.lockfile.name} (not sent yet, or not in this campaign)")
    if args.json:
        output.json(orjson.dumps({"number": number, **record}).decode())
    else:
        output.recipient(number, record)
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import open_campaign
    from faxops.reconcile import reconcile

    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    with _state_writer(campaign, output, "reconcile", args.lock_timeout) as writer:
        report = reconcile(campaign, writer, writer.state())
    output.reconcile(report)
    if not (report.found or report.not_sent or report.held):
        output.line("Nothing to reconcile: every recorded send has a known outcome.")
    return _held_exit(report.held_count)


def cmd_resolve(args: argparse.Namespace, output: Any) -> int:
    from faxops.manifest import load_manifest
    from faxops.state import StatePaths, StateWriter
    from faxops.state.journal import now_iso
    from faxops.state.lock import LockInfo

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    number = _number_arg(args.number, loaded)  # read as cancel and --resend read it, before taking the lock
    writer = StateWriter(
        StatePaths.for_manifest(args.manifest, loaded.name),
        loaded.name,
        operation="resolve",
        lock_timeout=args.lock_timeout,
    )
    try:
        summary = writer.state().summaries.get(number)
        if summary is None or summary.status != "pending":
            what = "is not in the recorded state" if summary is None else f"is {summary.status}, not unknown"
            raise InputError(
                f"{number} {what}; only sends of unknown outcome can be resolved",
                hint="`faxops plan` lists them under `? unknown`",
            )
        info: LockInfo | None = writer.lock.info
        writer.record(
            {
                "t": "resolve",
                "ref": summary.reference,
                "number": number,
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
    output.line(f"Recorded {number}: {verdict}.")
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import open_campaign
    from faxops.tracking import refresh

    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    with _state_writer(campaign, output, "refresh", args.lock_timeout) as writer, _Signals(output) as signals:
        report = refresh(campaign, writer, force=args.force, stop=signals.stop)
    if not report.open and not report.pushed:
        output.line("Nothing to refresh: every recorded fax has a final status.")
    else:
        output.refresh(report)
    _report_if_due(campaign, output)
    return EXIT_ERROR if report.stopped and "credentials" in report.stopped else EXIT_OK


def cmd_cancel(args: argparse.Namespace, output: Any) -> int:
    from faxops.campaign import open_campaign
    from faxops.tracking import cancel

    if not args.numbers and not args.all:
        raise InputError("name the recipients to cancel, or pass --all to cancel every queued fax")
    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    numbers = {_number_arg(n, campaign.loaded) for n in args.numbers} if args.numbers else None
    with _state_writer(campaign, output, "cancel", args.lock_timeout) as writer:
        report = cancel(campaign, writer, numbers)
    output.line(f"Canceled {len(report.canceled)} fax(es).")
    for number in report.not_open:
        output.err.print(f"[yellow]{number}: not queued (already sent, final, or not in the state); left alone[/]")
    for line in report.failed:
        output.err.print(f"[red]✗ {line}[/]")
    return EXIT_ERROR if report.failed else EXIT_OK


def cmd_report(args: argparse.Namespace, output: Any) -> int:
    from faxops import reports
    from faxops.campaign import cpu_workers, open_campaign
    from faxops.state import load_state

    campaign = open_campaign(args.manifest, allow_outside=args.allow_outside)
    campaign.provider.close()
    report = reports.build(campaign, campaign.plan(load_state(campaign.paths), cpu_workers(), names=True))
    if args.format:
        mask = args.mask_numbers
        if args.format == "json":
            output.stream(reports.iter_json(report, mask=mask))
        elif args.format == "csv":
            output.stream(reports.iter_csv(report, mask=mask))
        else:
            sys.stdout.write(reports.render_html(report, mask=mask))
        return EXIT_OK
    targets = campaign.loaded.model.reporting
    if not targets:
        output.line("The manifest has no `reporting:` targets; use --format json|csv|html to print a report.")
        return EXIT_OK
    results = reports.deliver(campaign, report, reports.due_targets(campaign, report, trigger="manual"))
    output.deliveries(results)
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


def cmd_webhook(args: argparse.Namespace, output: Any) -> int:
    from faxops.manifest import load_manifest
    from faxops.receiver import Receiver, credentials_for
    from faxops.state import StatePaths

    _log_to_stderr("faxops.webhook", "uvicorn.error")
    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    credentials = credentials_for(loaded)
    receiver = Receiver(
        StatePaths.for_manifest(args.manifest, loaded.name), loaded.name, credentials, host=args.host, port=args.port
    ).start()
    output.line(f"Receiving status pushes for campaign {loaded.name} on {receiver.url}")
    output.line("  FAX.PLUS fax_sent: /faxplus · Retarus status push (XML or JSON): /retarus · generic JSON: /generic")
    output.line("  Authenticate with Basic auth (user from status_push.username), a Bearer token, or ?token=.")
    _serve_until_interrupted(output, receiver.stop)
    output.line(f"Stopped: {receiver.accepted} update(s) accepted, {receiver.rejected} request(s) refused.")
    return EXIT_OK


def cmd_suppress(args: argparse.Namespace, output: Any) -> int:
    from faxops.suppression import add_suppression, global_suppression_list

    path = args.list or global_suppression_list()
    if path is None:
        raise InputError("no global suppression list: set FAXOPS_SUPPRESSION_LIST, or pass --list FILE")
    number = add_suppression(path, args.number, args.reason, region=args.region)
    output.line(f"Added {number} to {path}: never sent by any campaign that reads this list.")
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


def cmd_fmt(args: argparse.Namespace, output: Any) -> int:
    from faxops.fmt import find_manifests, format_files

    results = format_files(find_manifests(args.manifests, only_manifests=args.only_manifests), check=args.check)
    changed = [r.path for r in results if r.changed]
    for path in changed:
        output.line(str(path))  # like terraform fmt: the files (that would be) rewritten, one per line
    if args.check and changed:
        output.err.print(f"{len(changed)} file(s) not in the canonical layout; run `faxops fmt` to fix them.")
        return EXIT_ERROR
    return EXIT_OK


def cmd_init(args: argparse.Namespace, output: Any) -> int:
    from faxops.scaffold import init_campaign, relative_to_cwd

    written = init_campaign(args.directory, provider=args.provider, ci=None if args.ci == "none" else args.ci)
    for path in written:
        output.line(f"created {relative_to_cwd(path)}")
    manifest = relative_to_cwd(args.directory / "campaign.yaml")
    output.hint(
        f"Next: add recipients to the CSV, then `faxops validate {manifest}` and `faxops plan {manifest}`.",
        f"Created the campaign {manifest}.",
    )
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace, output: Any) -> int:
    from faxops.testing import SIMULATORS

    if args.provider not in SIMULATORS:
        raise InputError(f"no simulator for {args.provider!r} (there are: {', '.join(sorted(SIMULATORS))})")
    sim = SIMULATORS[args.provider](port=args.port, transmit_seconds=args.transmit_seconds).start()
    output.line(f"{args.provider} simulator listening on {sim.url}")
    urls = ", ".join(
        f"{key}: [{', '.join(value)}]" if isinstance(value, list) else f"{key}: {value}"
        for key, value in sim.manifest_settings().items()
    )
    output.line(f"Point a manifest at it with `provider: {{type: {args.provider}, {urls}, ...}}`;")
    output.line("see campaigns/ for an example per provider. Control it under /_sim/ (faults, outcomes, advance).")
    _serve_until_interrupted(output, sim.stop)
    return EXIT_OK


def _log_to_stderr(*names: str) -> None:
    """One line per event on stderr (scrubbed like all output), for a server that runs unattended."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        # uvicorn's own INFO lines (startup banners) repeat what the command prints; its warnings matter.
        logger.setLevel(logging.INFO if name.startswith("faxops") else logging.WARNING)


def _serve_until_interrupted(output: Any, stop: Any) -> None:
    """Serve until Ctrl-C or SIGTERM (how systemd, Docker and CI stop a service), then stop cleanly."""
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    output.line("Press Ctrl-C to stop.")
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop()


_COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "show": cmd_show,
    "apply": cmd_apply,
    "status": cmd_status,
    "reconcile": cmd_reconcile,
    "resolve": cmd_resolve,
    "refresh": cmd_refresh,
    "cancel": cmd_cancel,
    "report": cmd_report,
    "webhook": cmd_webhook,
    "suppress": cmd_suppress,
    "force-unlock": cmd_force_unlock,
    "schema": cmd_schema,
    "fmt": cmd_fmt,
    "init": cmd_init,
    "simulate": cmd_simulate,
}
