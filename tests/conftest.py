import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.reference: the reference step, beside the tests, not in the package
SHARED_DATA = Path(os.environ.get("LSR_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("LSR_PROGRESS", "0")
os.environ.setdefault("LSR_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # a per-session cache, so tests never read a user's cache: for the library (its data defaults) and for the
    # edges the tests call (the lsr command and the notebooks read $LSR_CACHE)
    from lsr_utils.data.cache import set_defaults

    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("LSR_CACHE", str(cache))
    set_defaults(cache=cache, offline=True)


@pytest.fixture
def shared_data():
    if not (SHARED_DATA / "cifar10-jpeg").is_dir():
        pytest.skip(f"real datasets not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_shapes():
    from lsr_utils.data import load_data

    return load_data("shapes", n_train=96, n_test=64)


def pytest_report_header(config):
    """Say up front whether the real-data tests run (they are skipped, by name, where the data are absent)."""
    if (SHARED_DATA / "cifar10-jpeg").is_dir():
        return f"real-data tests: using {SHARED_DATA}"
    return (f"real-data tests: SKIPPED (no real datasets at {SHARED_DATA}; set LSR_SHARED_DATA to a folder holding "
            f"cifar10-jpeg/ and mnist/ to run them)")
