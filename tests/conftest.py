"""Suite-wide settings: deterministic seeds and a thread count that suits the 2-core CI machine."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

# Norse 1.1.0 calls torch.jit.script at import; that deprecation is Norse's, not ours.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
torch.set_num_threads(int(os.environ.get("QKF_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
