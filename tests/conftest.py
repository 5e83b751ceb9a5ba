import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.reference: the reference step, beside the tests, not in the package
SHARED_DATA = Path(os.environ.get("LSR_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("LSR_PROGRESS", "0")
os.environ.setdefault("LSR_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

# The session's smoke runs, shared: the smoke reproduction of tests/test_reproduce.py trains them here, and the
# notebooks run through nbval afterwards (their kernels given LSR_OUT, their edge's setting) reuse them instead of
# training them again. Never the project's runs/, figures/ or results/.
SMOKE_OUT = Path(tempfile.mkdtemp(prefix="lsr-smoke-"))


def pytest_runtest_setup(item):
    if str(getattr(item, "fspath", "")).endswith(".ipynb"):
        os.environ["LSR_OUT"] = str(SMOKE_OUT)
    else:
        os.environ.pop("LSR_OUT", None)


@pytest.fixture(scope="session")
def smoke_out():
    return SMOKE_OUT


# A per-session cache, so that tests never read a user's (its datasets, its FID weights): for the library (its data
# defaults) and for every process the tests start (the lsr command and the notebooks read $LSR_CACHE), set before
# any fixture of any scope runs.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="lsr-cache-"))
os.environ["LSR_CACHE"] = str(SESSION_CACHE)


def pytest_configure(config):
    from lsr_utils.data.cache import set_defaults

    set_defaults(cache=SESSION_CACHE, offline=True)


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch):
    from lsr_utils.data.cache import set_defaults

    monkeypatch.setenv("LSR_CACHE", str(SESSION_CACHE))
    set_defaults(cache=SESSION_CACHE, offline=True)


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
