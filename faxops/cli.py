"""The ``faxops`` command: the parser, dispatch to ``faxops.commands``, and the exit-code table.

Exit codes (Terraform's where it has one), chosen by the type of the error only:
0 success · 1 error · 2 changes pending (``plan --detailed-exitcode``) · 3 state locked ·
4 saved plan stale · 5 unknown outcomes held for a person · 70 internal error (sysexits' EX_SOFTWARE) ·
130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TextIO, TypeVar, cast

from faxops import __version__, clock, secrets
from faxops.arguments import UsageError, build_parser
from faxops.commands import (
    apply,
    cancel,
    fmt,
    force_unlock,
    init,
    plan,
    reconcile,
    refresh,
    report,
    resolve,
    schema,
    show,
    simulate,
    state,
    status,
    suppress,
    validate,
    webhook,
)
from faxops.errors import (
    FaxopsError,
    InterruptedRun,
    StalePlanError,
    StateLockedError,
    UnknownOutcomesError,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from faxops.output import Output

EXIT_ERROR = 1
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE: a bug in faxops, not something the user did
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[type[FaxopsError], int] = {
    StateLockedError: 3,
    StalePlanError: 4,
    UnknownOutcomesError: 5,
    InterruptedRun: EXIT_INTERRUPTED,
}


def exit_code(exc: FaxopsError) -> int:
    """The exit code of an error: from its class (the nearest one in ``EXIT_CODES``), never its text."""
    if isinstance(exc, InterruptedRun) and exc.signal_name == "SIGTERM":
        return 143  # 128 + 15, as a shell reports a process ended by SIGTERM
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_ERROR


_Args = TypeVar("_Args", bound="DataclassInstance")


class _Dispatch(Protocol):
    def arguments(self, namespace: argparse.Namespace) -> object: ...

    def __call__(self, namespace: argparse.Namespace, output: Output) -> int: ...


class _Command(Generic[_Args]):
    """A command's ``run`` and the dataclass of its arguments, taken by field name from the command line."""

    def __init__(self, args_type: type[_Args], run: Callable[[_Args, Output], int]) -> None:
        self.args_type = args_type
        self.run = run

    def arguments(self, namespace: argparse.Namespace) -> _Args:
        # By name, so that a field without an option (or a misspelt one) fails at once in every test.
        return self.args_type(**{f.name: getattr(namespace, f.name) for f in fields(self.args_type)})

    def __call__(self, namespace: argparse.Namespace, output: Output) -> int:
        return self.run(self.arguments(namespace), output)


# One line per command: adding a command is its module and one line here.
_COMMANDS: dict[str, _Dispatch] = {
    "validate": _Command(validate.ValidateArgs, validate.run),
    "plan": _Command(plan.PlanArgs, plan.run),
    "show": _Command(show.ShowArgs, show.run),
    "apply": _Command(apply.ApplyArgs, apply.run),
    "status": _Command(status.StatusArgs, status.run),
    "reconcile": _Command(reconcile.ReconcileArgs, reconcile.run),
    "resolve": _Command(resolve.ResolveArgs, resolve.run),
    "refresh": _Command(refresh.RefreshArgs, refresh.run),
    "cancel": _Command(cancel.CancelArgs, cancel.run),
    "report": _Command(report.ReportArgs, report.run),
    "webhook serve": _Command(webhook.WebhookArgs, webhook.run),
    "suppress add": _Command(suppress.SuppressAddArgs, suppress.run),
    "force-unlock": _Command(force_unlock.ForceUnlockArgs, force_unlock.run),
    "state init": _Command(state.StateInitArgs, state.run_init),
    "state list": _Command(state.StateListArgs, state.run_list),
    "state pull": _Command(state.StatePullArgs, state.run_pull),
    "state migrate": _Command(state.StateMigrateArgs, state.run_migrate),
    "schema": _Command(schema.SchemaArgs, schema.run),
    "fmt": _Command(fmt.FmtArgs, fmt.run),
    "init": _Command(init.InitArgs, init.run),
    "simulate": _Command(simulate.SimulateArgs, simulate.run),
}


def _command_name(args: argparse.Namespace) -> str:
    sub = (
        getattr(args, "webhook_command", None)
        or getattr(args, "suppress_command", None)
        or getattr(args, "state_command", None)
    )
    return f"{args.command} {sub}" if sub else str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one faxops command; return its exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc.usage}{exc.message}\n")
        return EXIT_ERROR
    # Everything printed, by rich or written directly, passes the secret scrubber on its way out.
    secrets.clear()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, secrets.ScrubbedStream(stdout))
    sys.stderr = cast(TextIO, secrets.ScrubbedStream(stderr))
    try:
        return _run(args, argv)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from faxops.automation import in_automation
    from faxops.output import Output

    # stdout carries a document (JSON, markdown): everything for people goes to stderr.
    document = getattr(args, "json", False) or getattr(args, "format", None) in ("json", "markdown")
    output = Output(
        color=not getattr(args, "no_color", False), json_mode=document, automation=in_automation(os.environ)
    )
    try:
        return _COMMANDS[_command_name(args)](args, output)
    except FaxopsError as exc:
        output.error(exc)
        return exit_code(exc)
    except KeyboardInterrupt:
        output.interrupted()
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `faxops status | head`: the reader left; nothing to report
        return EXIT_ERROR
    except Exception as exc:  # a bug: short message for the user, the traceback for us
        output.internal_error(exc, _debug_log(exc, argv))
        return EXIT_INTERNAL


def _debug_log(exc: BaseException, argv: Sequence[str] = ()) -> Path:
    """Append the traceback, with the faxops version and the command, to the debug log; return its path."""
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "faxops"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home must not turn one bug into two
        directory = Path(tempfile.gettempdir())
    path = directory / "debug.log"
    stamp = clock.now().isoformat(timespec="seconds")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"--- {stamp} faxops {__version__}: faxops {secrets.scrub(' '.join(argv))}\n")
        fh.write(secrets.scrub("".join(traceback.format_exception(exc))))
    return path
