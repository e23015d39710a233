"""Shared pytest set-up: where the real CIFAR-10 copy is, and the GPU bench's options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_ENV = "ABLATION_TEST_DATA"
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "data" / "cifar10-small.npz"


@pytest.fixture(scope="session")
def cifar_npz() -> Path:
    """The offline CIFAR-10 copy (../shared/data/cifar10-small.npz, or $ABLATION_TEST_DATA)."""
    path = Path(os.environ.get(DATA_ENV, DEFAULT_DATA))
    if not path.is_file():
        if DATA_ENV in os.environ:
            pytest.fail(f"{DATA_ENV}={path} does not exist")
        pytest.skip(f"no CIFAR-10 copy at {path}; set {DATA_ENV}=PATH.npz to run this test")
    return path
