"""Progress of long work: one rich bar builder, and the small sink interface library code reports to.

Library functions (``prepare``, rendering the synthetic set, the benchmarks) take a :class:`ProgressSink` and call
``start`` per phase and ``advance`` per item; they never draw. The CLI hands them a :class:`RichSink`; tests and
scripts pass nothing (the base class ignores every report).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class ProgressSink:
    """Where library code reports progress; this base ignores the reports."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def note(self, message: str) -> None:
        """Something the user should read (a repaired shard, a cleaned-up file); this base drops it."""

    def close(self) -> None: ...

    def __enter__(self) -> ProgressSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(*, unit: str | None = None, info: bool = False, console: Console | None = None, enabled=True):
    """A rich progress bar: description, bar, done/total, then a rate in ``unit``/s or (``info``) a free text field
    ``info`` the caller updates, then the time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} {unit}/s" if task.speed else "", style="cyan")

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(Rate())
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, transient=False, disable=not enabled)


PLAIN_EVERY_S = 60.0  # a plain progress line at least this often (besides every 10% and each phase's end)


def rate_text(per_s: float, unit: str) -> str:
    """A rate with three significant figures, whatever its size: 0.0412 clips/s, 3.57 clips/s, 1240 clips/s."""
    if per_s <= 0:
        return f"0 {unit}/s"
    return f"{per_s:.3g} {unit}/s" if per_s < 1000 else f"{per_s:.0f} {unit}/s"


def duration_text(seconds: float) -> str:
    """``1h02m``, ``4m05s``, ``12s``."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class RichSink(ProgressSink):
    """One rich bar per phase (each ``start`` completes the previous phase's bar). The display starts with the
    first phase and stops at :meth:`close`, so a caller can close it before another live display (a training run's
    own bar) starts.

    When the console is not a terminal (a batch job's log file), there is no bar: a plain line per phase when it
    starts, then every 10% or every ``every_s`` seconds, whichever comes first, and when it ends, each with done/
    total, the rate and the time left."""

    def __init__(self, console: Console | None = None, unit: str = "videos", every_s: float = PLAIN_EVERY_S):
        from rich.console import Console

        self.console, self.unit, self.every_s = console or Console(stderr=True), unit, every_s
        self.bar: Progress | None = None
        self.task = None
        self.plain = not self.console.is_terminal
        self._phase: list = []  # plain mode: description, total, done, started, last line time, last line done

    def start(self, description: str, total: int) -> None:
        if self.plain:
            self._end_phase()
            now = time.monotonic()
            self._phase = [description, total, 0, now, now, 0]
            self._line(starting=True)
            return
        if self.bar is None:
            self.bar = progress_bar(unit=self.unit, console=self.console)
            self.bar.start()
        elif self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[self.task].total)
        self.task = self.bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if not self.plain:
            self.bar.advance(self.task, n)
            return
        if not self._phase:
            return
        self._phase[2] += n
        _, total, done, _, last_time, last_done = self._phase
        tenth = max(1, total // 10)
        if done >= total or done - last_done >= tenth or time.monotonic() - last_time >= self.every_s:
            self._line()

    def _line(self, starting: bool = False) -> None:
        description, total, done, started, _, _ = self._phase
        now = time.monotonic()
        self._phase[4], self._phase[5] = now, done
        if starting:
            self.console.print(f"{description}: {total} {self.unit}", soft_wrap=True, highlight=False)
            return
        rate = done / max(now - started, 1e-9)
        left = f", {duration_text((total - done) / rate)} left" if 0 < done < total and rate > 0 else ""
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        text = f"{description}: {done}/{total}{pct}, {rate_text(rate, self.unit)}{left}"
        self.console.print(text, soft_wrap=True, highlight=False)

    def _end_phase(self) -> None:
        if self._phase and self._phase[5] != self._phase[2]:
            self._line()
        self._phase = []

    def note(self, message: str) -> None:
        from rich.text import Text

        target = self.bar.console if self.bar is not None else self.console
        target.print(Text("note: ", style="yellow") + Text(message), soft_wrap=True)

    def close(self) -> None:
        if self.plain:
            self._end_phase()
        if self.bar is not None:
            self.bar.stop()
        self.bar, self.task = None, None
