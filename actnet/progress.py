"""Progress of long work: one rich bar builder, and the small sink interface library code reports to.

Library functions (``prepare``, rendering the synthetic set, the benchmarks) take a :class:`ProgressSink` and call
``start`` per phase and ``advance`` per item; they never draw. The CLI hands them a :class:`RichSink`; tests and
scripts pass nothing (the base class ignores every report).
"""

from __future__ import annotations

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


class RichSink(ProgressSink):
    """One rich bar per phase (each ``start`` completes the previous phase's bar). The display starts with the
    first phase and stops at :meth:`close`, so a caller can close it before another live display (a training run's
    own bar) starts."""

    def __init__(self, console: Console | None = None, unit: str = "videos"):
        self.console, self.unit = console, unit
        self.bar: Progress | None = None
        self.task = None

    def start(self, description: str, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(unit=self.unit, console=self.console)
            self.bar.start()
        elif self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[self.task].total)
        self.task = self.bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def note(self, message: str) -> None:
        from rich.text import Text

        target = self.bar.console if self.bar is not None else self.console
        if target is None:
            from rich.console import Console

            target = Console(stderr=True)
        target.print(Text("note: ", style="yellow") + Text(message), soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar, self.task = None, None

    def __enter__(self) -> RichSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
