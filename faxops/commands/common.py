"""What several commands share: reading a typed number, the state writer, signals, due reports."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from faxops.errors import InputError, UnknownOutcomesError

if TYPE_CHECKING:
    from faxops.campaign import Campaign
    from faxops.manifest import LoadedManifest
    from faxops.output import Output
    from faxops.state import StateWriter

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

_Handler = Callable[[int, FrameType | None], object] | int | None


def output_format(json: bool, fmt: str | None) -> str:
    """``--format``, with ``--json`` kept as the alias it was before ``--format`` existed."""
    if json and fmt not in (None, "json"):
        raise InputError(f"--json and --format {fmt} disagree; pass one of them")
    return "json" if json else (fmt or "text")


def number_arg(text: str, loaded: LoadedManifest, what: str = "") -> str:
    """A number typed on the command line, read like the manifest's (its default_region), as E.164."""
    from faxops.recipients import normalise

    number, why = normalise(text, loaded.model.recipients.default_region)
    if number is None:
        raise InputError(f"{what}{text}: {why}")
    return number


@contextmanager
def state_writer(campaign: Campaign, operation: str, lock_timeout: float = 0.0) -> Iterator[StateWriter]:
    """The campaign's state writer for one command (folded and released however it ends), then the provider
    closed: a command that records provider answers holds both for the same span."""
    try:
        with campaign.store.writer(operation, lock_timeout) as writer:
            yield writer
    finally:
        campaign.provider.close()


def held_exit(held: int) -> int:
    """Exit 0, or raise the error whose exit code (5) tells a pipeline that a person must decide."""
    if held:
        raise UnknownOutcomesError(
            f"{held} recipient(s) have a send of unknown outcome that the provider cannot settle",
            hint="see `faxops plan`; decide each with `faxops resolve` once you know whether it was sent",
        )
    return EXIT_OK


def report_if_due(campaign: Campaign, output: Output) -> None:
    """Render the reporting targets whose ``when`` has come (after apply and refresh)."""
    from faxops import reports

    targets = campaign.loaded.model.reporting
    if not any(t.when in ("final", "always") for t in targets):
        return
    plan = campaign.plan(campaign.store.read(), names=True)
    report = reports.build(campaign, plan)
    due = reports.due_targets(campaign, report, trigger="auto")
    if due:
        output.deliveries(reports.deliver(campaign, report, due))


class Signals:
    """First SIGINT/SIGTERM: stop starting new sends. Second: abandon the ones in flight."""

    def __init__(self, output: Output) -> None:
        self.stop = threading.Event()
        self.received: str | None = None
        self.output = output
        self._previous: dict[int, _Handler] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # The second signal abandons the faxes in flight: their intents are journalled, so the next
        # run reconciles them instead of sending them again.
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        self.stop.set()
        self.output.interrupt_received()

    def __enter__(self) -> Signals:
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


def serve_until_interrupted(output: Output, stop: Callable[[], None]) -> None:
    """Serve until Ctrl-C or SIGTERM (how systemd, Docker and CI stop a service), then stop cleanly."""
    done = threading.Event()
    # SIGTERM ends the wait like Ctrl-C does, so that the server stops and says what it received.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    output.line("Press Ctrl-C to stop.")
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop()
