"""The command line's grammar: every command, option and argument type (``faxops.cli`` runs it).

Usage errors are exit 1 (see ``_Parser``); global options are accepted before or after the command.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from faxops import __version__

if TYPE_CHECKING:
    # the `sub` that each group of commands is added to (generic only for the type checker)
    _Sub = argparse._SubParsersAction["_Parser"]


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


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each group of commands is added by its own function below."""
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
    # The order here is the order of `faxops --help`: the everyday commands first.
    _planning_commands(sub)
    _apply_command(sub)
    _state_commands(sub)
    _reporting_commands(sub)
    _other_commands(sub)
    _global_options_everywhere(parser)
    return parser


def _planning_commands(sub: _Sub) -> None:
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


def _apply_command(sub: _Sub) -> None:
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


def _state_commands(sub: _Sub) -> None:
    p = sub.add_parser("refresh", help="ask the provider for the status of every fax not final yet")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--force", action="store_true", help="poll even if the provider's minimum interval has not passed")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

    p = sub.add_parser("cancel", help="cancel queued faxes where the provider supports it")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("numbers", nargs="*", metavar="NUMBER", help="recipients to cancel (default: with --all, every one)")
    p.add_argument("--all", action="store_true", help="cancel every queued fax of the campaign")
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DURATION")

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

    p = sub.add_parser("state", help="the state backends: create tables, list campaigns, pull, migrate")
    state = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)
    url_help = "a postgresql:// URL (default: $FAXOPS_STATE_URL, which keeps the password off the command line)"
    p = state.add_parser("init", help="create or migrate faxops' tables in a PostgreSQL database")
    p.add_argument("url", nargs="?", metavar="URL", help=url_help)
    p.add_argument("--schema", default="faxops", help="the PostgreSQL schema (default faxops)")
    p = state.add_parser("list", help="list the campaigns in a PostgreSQL database, with counts and lock holders")
    p.add_argument("url", nargs="?", metavar="URL", help=url_help)
    p.add_argument("--schema", default="faxops", help="the PostgreSQL schema (default faxops)")
    p.add_argument("--json", action="store_true")
    p = state.add_parser("pull", help="write a campaign's state to stdout in the lockfile format")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p = state.add_parser("migrate", help="move a campaign's state to another backend (both ways)")
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--to", required=True, metavar="URL|local", help="a postgresql:// URL, or `local` (the lockfile)")
    p.add_argument("--schema", default=None, help="the target's PostgreSQL schema (default: the manifest's)")


def _reporting_commands(sub: _Sub) -> None:
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


def _other_commands(sub: _Sub) -> None:
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
