"""qkf_snn/io.py: atomic writes leave the old file or the new one, never a part of either."""

from __future__ import annotations

import pytest

from qkf_snn.io import atomic_write_bytes, remove_stale_temps


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # fails inside the write
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file is cleaned up
    (tmp_path / ".last.pt.abc.tmp").write_bytes(b"half")  # what a SIGKILL mid-write leaves
    assert remove_stale_temps(tmp_path) == 1 and target.read_bytes() == b"old"
