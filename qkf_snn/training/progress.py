"""What a run shows while it trains (rank 0): a rich progress bar per epoch with live loss and
accuracy on terminals, one line per epoch otherwise (SLURM logs), or nothing."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class EpochProgress:
    def __init__(self, mode: str = "auto", *, enabled: bool = True, console: Console | None = None) -> None:
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode = mode if enabled else "none"
        self.console = console or Console(soft_wrap=True)
        self._progress: Progress | None = None
        self._task: Any = None

    def print(self, message: str) -> None:
        if self.mode != "none":
            self.console.print(message, highlight=False)

    def start(self, epoch: int, epochs: int, total: int, done: int = 0) -> None:
        if self.mode != "bar":
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.1%}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=done, loss=float("nan"), acc=0.0)

    def update(self, loss: float, acc: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=loss, acc=acc)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self.stop()

    def epoch_line(self, record: dict[str, Any], epochs: int) -> None:
        parts = [
            f"epoch {record['epoch'] + 1:>3}/{epochs}",
            f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.1%}",
            f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.1%} F1 {record['val_f1_macro']:.3f}",
        ]
        if "val_acc_audio" in record:
            parts.append(f"(audio {record['val_acc_audio']:.1%}, video {record['val_acc_video']:.1%})")
        parts.append(
            f"lr {record['lr']:.2e}  {record['time_s']:.1f}s" + ("  *best" if record["best"] else "")
        )
        self.print("  ".join(parts))
