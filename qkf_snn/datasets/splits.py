"""Deterministic train / val / test splits: stratified, by group, and by position in a listing.

All functions are pure: they take per-clip keys/labels/groups and return one split name per clip.
Randomness comes from a seed and a stable order (sorted keys), never from the file system order.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_VAL = 0.1
DEFAULT_TEST = 0.1


@dataclass
class Assignment:
    """A split name per record, or None for a record left out, with the reason per left-out index."""

    splits: list[str | None]
    reasons: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _rng(seed: int, name: str) -> np.random.Generator:
    # One stream per (seed, stratum): adding a class does not reshuffle the others.
    return np.random.default_rng([seed, zlib.crc32(str(name).encode())])


def _share(n: int, fraction: float) -> int:
    """Clips for a side of ``fraction`` out of ``n``: at least one when the stratum can afford it."""
    if n < 3 or fraction <= 0:
        return 0
    return max(1, int(n * fraction + 0.5))


def stratified_split(
    keys: Sequence[str],
    labels: Sequence[str],
    *,
    val: float = DEFAULT_VAL,
    test: float = DEFAULT_TEST,
    seed: int = 0,
) -> list[str]:
    """Per class: shuffle (by seed) the clips sorted by key, the first ``test`` share to test, the next
    ``val`` share to val, the rest to train. Per class, n_test = max(1, round(n·test)) when n ≥ 3."""
    out = ["train"] * len(keys)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    for label, idx in by_class.items():
        idx = sorted(idx, key=lambda i: keys[i])
        order = _rng(seed, label).permutation(len(idx))
        n_test, n_val = _share(len(idx), test), _share(len(idx), val)
        for rank, j in enumerate(order):
            out[idx[j]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def group_split(
    groups: Sequence[str],
    *,
    val: float = DEFAULT_VAL,
    test: float = DEFAULT_TEST,
    seed: int = 0,
    stratum: str = "",
    pair_side: str = "test",
) -> list[str]:
    """Whole groups (actors, recordings) to one side: groups shuffled by seed fill test, then val, each
    up to its share of clips; every side gets at least one group when there are three or more. With
    two groups, one trains and the other goes to ``pair_side``; a single group trains."""
    sizes: dict[str, int] = defaultdict(int)
    for g in groups:
        sizes[g] += 1
    order = sorted(sizes)
    order = [order[j] for j in _rng(seed, "groups:" + stratum).permutation(len(order))]
    n = len(groups)
    side_of: dict[str, str] = {}
    if len(order) == 2:
        return [pair_side if g == order[0] else "train" for g in groups]
    i = 0
    for side, fraction, keep in (("test", test, 2), ("val", val, 1)):
        target, count = n * fraction, 0
        # Stop before the group that would overshoot by more than half of itself.
        while i < len(order) - keep and (count == 0 or count + sizes[order[i]] / 2 <= target):
            if fraction <= 0:
                break
            side_of[order[i]] = side
            count += sizes[order[i]]
            i += 1
    return [side_of.get(g, "train") for g in groups]


def stratified_group_split(
    groups: Sequence[str],
    labels: Sequence[str],
    *,
    val: float = DEFAULT_VAL,
    test: float = DEFAULT_TEST,
    seed: int = 0,
) -> list[str]:
    """:func:`group_split` within each class, for groups that each belong to one class (a freesound
    recording is one sound event): every class is represented on each side, no group is split."""
    first_label: dict[str, str] = {}
    for g, label in zip(groups, labels, strict=True):
        first_label.setdefault(g, label)
    out = ["train"] * len(groups)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_class[first_label[g]].append(i)
    pairs = 0
    for label, idx in sorted(by_class.items()):
        n_groups = len({groups[i] for i in idx})
        # Classes with only two groups give their spare group to test and val in turn.
        pair_side = ("test", "val")[pairs % 2]
        pairs += n_groups == 2
        sides = group_split(
            [groups[i] for i in idx], val=val, test=test, seed=seed, stratum=label, pair_side=pair_side
        )
        for i, side in zip(idx, sides, strict=True):
            out[i] = side
    return out


def carve_val(
    keys: Sequence[str], labels: Sequence[str], splits: list[str], *, val: float, seed: int
) -> list[str]:
    """Move a stratified ``val`` share of each class's train clips to val (for layouts without val)."""
    train = [i for i, s in enumerate(splits) if s == "train"]
    sub = stratified_split([keys[i] for i in train], [labels[i] for i in train], val=0.0, test=val, seed=seed)
    out = list(splits)
    for i, s in zip(train, sub, strict=True):
        out[i] = "val" if s == "test" else "train"
    return out


def listing_split(
    keys: Sequence[str], labels: Sequence[str], *, train: float = 0.7, val_of_train: float = 1 / 7
) -> list[str]:
    """Per class, by sorted name: the first ``train`` share is the training pool, the rest test; the
    last ``val_of_train`` of the pool becomes val (the published class-directory protocol plus a val)."""
    out = ["train"] * len(keys)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    for idx in by_class.values():
        idx = sorted(idx, key=lambda i: keys[i])
        n_pool = int(len(idx) * train + 0.5)
        n_val = int(n_pool * val_of_train + 0.5) if n_pool >= 3 else 0
        for rank, i in enumerate(idx):
            out[i] = "test" if rank >= n_pool else "val" if rank >= n_pool - n_val else "train"
    return out
