"""The progress display of ``apply``: a bar on a terminal, a line every 10 % in a log."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from faxops.apply import JobResult


class ApplyProgress:
    """A progress bar on a terminal; a line every 10 % otherwise (CI logs stay readable).

    Both say how long the run has taken, how long it may still take, and how many faxes failed so far:
    an operator watching a long run should not learn of a wave of rejections only at the end.
    """

    def __init__(self, err: Console, total: int, *, plain_lines: bool = False) -> None:
        self.err = err
        self.total = total
        self.done = 0
        self.failed = 0  # rejected or not sent
        self.unknown = 0
        self._lock = threading.Lock()
        self._next_mark = 0.1
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._plain_lines = plain_lines  # CI logs: a line every 10 % whatever the size of the run
        if err.is_terminal and total and not plain_lines:
            self._progress = Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failures]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
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
                self.err.print(
                    f"sent {self.done}/{self.total} ({self.done * 100 // self.total}%), {self._failures()} · "
                    f"elapsed {_clock(elapsed)}, ETA {_clock(left)}"
                )
                while self._next_mark <= self.done / self.total:
                    self._next_mark += 0.1


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
