"""Progress reporting for long loops: a rich bar on stderr, a callback, or nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[int, int], None]  # (done, total)


@contextlib.contextmanager
def progress_bar(
    progress: bool | ProgressCallback, total: int, description: str
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; ``progress`` is True (rich bar), False (silent) or a callback."""
    if callable(progress):
        done = 0

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            progress(done, total)

        yield advance
    elif not progress:
        yield lambda n=1: None
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
