"""Run logs (rank 0 only): ``metrics.jsonl`` / ``metrics.csv`` (one record per epoch),
``steps.jsonl`` (every ``log_every`` steps) and TensorBoard scalars under ``tb/``.

On resume the files are cut back to what the checkpoint knows (epochs before it, steps up to it),
and TensorBoard purges later events, so a resumed run's logs read like an uninterrupted one's.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from qkf_snn.io import atomic_write_bytes


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool = True,
        resume_epoch: int | None = None,
        resume_step: int | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.dir, self.enabled = Path(run_dir), enabled
        self.epochs_path, self.steps_path = self.dir / "metrics.jsonl", self.dir / "steps.jsonl"
        self.csv_path = self.dir / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        resuming = resume_epoch is not None
        self._cut(self.epochs_path, lambda r: resuming and r["epoch"] < resume_epoch)
        self._cut(self.steps_path, lambda r: resuming and r["step"] <= (resume_step or 0))
        self._write_csv()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when logging

            purge = (resume_step or 0) + 1 if resuming else None
            self.tb = SummaryWriter(str(self.dir / "tb"), purge_step=purge)

    def step(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.steps_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, int | float):
                    self.tb.add_scalar(f"step/{key}", value, record["step"])

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.epochs_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        self._write_csv()
        if self.tb is not None:
            for key, value in record.items():
                if (
                    key not in ("step", "epoch")
                    and isinstance(value, int | float)
                    and not isinstance(value, bool)
                ):
                    self.tb.add_scalar(f"epoch/{key}", value, record["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        if not Path(path).is_file():
            return []
        # An append cut short (full disk, kill) leaves a last line without its newline: not a record.
        complete = Path(path).read_text().split("\n")[:-1]
        return [json.loads(line) for line in complete if line.strip()]

    def _cut(self, path: Path, keep) -> None:
        """Keep only the records ``keep`` accepts (a fresh run keeps none)."""
        kept = [r for r in self.read(path) if keep(r)]
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def _write_csv(self) -> None:
        records = self.read(self.epochs_path)
        columns: list[str] = []
        for r in records:
            columns += [k for k, v in r.items() if k not in columns and not isinstance(v, list | dict)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        atomic_write_bytes(self.csv_path, buffer.getvalue().encode())
