"""Summarise a sweep: one row per run under a folder, sorted by validation accuracy (the selection
criterion; test accuracy is shown, never used to choose).

    python jobs/sweep_summary.py runs/sweep
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> None:
    rows = []
    for path in sorted(Path(folder).glob("*/results.json")):
        r = json.loads(path.read_text())
        note = " (early stop)" if r["stopped_early"] else ""
        rows.append((r["val"]["acc"], r["test"]["acc"], r["test"]["f1_macro"], r["best_epoch"] + 1,
                     f"{r['epochs_run']}{note}", path.parent.name))  # fmt: skip
    if not rows:
        sys.exit(f"no results.json under {folder}")
    print("| run | val acc | test acc | test macro-F1 | best epoch | epochs |")
    print("|---|---|---|---|---|---|")
    for val, test, f1, best, epochs, name in sorted(rows, reverse=True):
        print(f"| {name} | {val:.2%} | {test:.2%} | {f1:.3f} | {best} | {epochs} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/sweep")
