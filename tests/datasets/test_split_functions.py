"""Split functions: exact sizes, determinism, and groups never on two sides."""

from __future__ import annotations

from collections import Counter

from qkf_snn.datasets.splits import (
    carve_val,
    group_split,
    listing_split,
    stratified_group_split,
    stratified_split,
)


def _data(per_class: dict[str, int]) -> tuple[list[str], list[str]]:
    keys, labels = [], []
    for label, n in per_class.items():
        keys += [f"{label}-{i:03d}" for i in range(n)]
        labels += [label] * n
    return keys, labels


def test_stratified_split_has_exact_sizes_per_class() -> None:
    keys, labels = _data({"a": 50, "b": 21, "c": 3, "d": 2})
    sides = stratified_split(keys, labels, val=0.1, test=0.2, seed=0)
    counts = Counter(zip(labels, sides, strict=True))
    # n_test = max(1, round(n * test)), n_val = max(1, round(n * val)) when n >= 3; else all train.
    assert (counts["a", "test"], counts["a", "val"], counts["a", "train"]) == (10, 5, 35)
    assert (counts["b", "test"], counts["b", "val"], counts["b", "train"]) == (4, 2, 15)
    assert (counts["c", "test"], counts["c", "val"], counts["c", "train"]) == (1, 1, 1)
    assert counts["d", "train"] == 2


def test_stratified_split_is_deterministic_and_independent_of_input_order() -> None:
    keys, labels = _data({"a": 40, "b": 40})
    first = dict(zip(keys, stratified_split(keys, labels, seed=1), strict=True))
    order = list(reversed(range(len(keys))))
    again = stratified_split([keys[i] for i in order], [labels[i] for i in order], seed=1)
    assert dict(zip([keys[i] for i in order], again, strict=True)) == first
    other = dict(zip(keys, stratified_split(keys, labels, seed=2), strict=True))
    assert other != first


def test_group_split_keeps_every_group_on_one_side_and_fills_all_sides() -> None:
    groups = [f"actor{i % 13}" for i in range(13 * 20)]
    sides = group_split(groups, val=0.1, test=0.1, seed=0)
    side_of = {}
    for g, s in zip(groups, sides, strict=True):
        assert side_of.setdefault(g, s) == s, f"{g} is on two sides"
    assert set(sides) == {"train", "val", "test"}
    assert Counter(sides)["test"] == Counter(sides)["val"] == 20  # 10 % of 260 is one 20-clip actor


def test_stratified_group_split_puts_each_class_in_train_and_spreads_two_group_classes() -> None:
    groups, labels = [], []
    for c in range(6):
        n_groups = 2 if c < 4 else 6
        for g in range(n_groups):
            groups += [f"c{c}g{g}"] * 3
            labels += [f"class{c}"] * 3
    sides = stratified_group_split(groups, labels, seed=0)
    for c in range(6):
        assert "train" in {s for s, lab in zip(sides, labels, strict=True) if lab == f"class{c}"}
    two_group_spare = [
        s for s, lab, g in zip(sides, labels, groups, strict=True) if s != "train" and lab < "class4"
    ]
    assert Counter(two_group_spare) == {"test": 6, "val": 6}  # alternated: two classes each, 3 clips a group
    side_of = {}
    for g, s in zip(groups, sides, strict=True):
        assert side_of.setdefault(g, s) == s


def test_listing_split_is_the_published_first_70_percent() -> None:
    keys, labels = _data({"a": 100, "b": 10})
    sides = listing_split(keys, labels)
    a = [s for s, lab in zip(sides, labels, strict=True) if lab == "a"]
    assert a[:60] == ["train"] * 60 and a[60:70] == ["val"] * 10 and a[70:] == ["test"] * 30
    assert Counter(s for s, lab in zip(sides, labels, strict=True) if lab == "b") == {
        "train": 6,
        "val": 1,
        "test": 3,
    }


def test_carve_val_moves_only_train_clips() -> None:
    keys, labels = _data({"a": 30, "b": 30})
    sides = ["test" if i % 10 == 0 else "train" for i in range(60)]
    carved = carve_val(keys, labels, sides, val=0.1, seed=0)
    assert all(c == "test" for s, c in zip(sides, carved, strict=True) if s == "test")
    assert Counter(carved)["val"] == 6  # int(27 * 0.1 + 0.5) = 3 of the 27 train clips of each class
