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
# Under pytest-xdist (`-n 2`, as .ci/run runs the suite) the workers share the cores: each worker's torch, and every
# process it starts (the lsr command, the notebooks' kernels, whose torch reads OMP_NUM_THREADS), takes one thread,
# so that two workers never run four threads on two cores.
XDIST_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1 if XDIST_WORKER else min(2, torch.get_num_threads()))

# The session's smoke runs, shared: the smoke reproduction of tests/test_reproduce.py trains them here, and the
# notebooks run through nbval afterwards (their kernels given LSR_OUT, their edge's setting) reuse them instead of
# training them again. Never the project's runs/, figures/ or results/.
SMOKE_OUT = Path(tempfile.mkdtemp(prefix="lsr-smoke-"))


class _SmokeRuns:
    """The notebooks' share of the session's smoke runs. A plugin, not hooks of this file: a conftest's hooks reach
    only the items under its own folder (tests/), never those of notebooks/."""

    @staticmethod
    def pytest_runtest_setup(item):
        """The notebooks' kernels get LSR_OUT = SMOKE_OUT; every other test none."""
        if item.path.suffix == ".ipynb":
            os.environ["LSR_OUT"] = str(SMOKE_OUT)
        else:
            os.environ.pop("LSR_OUT", None)


OWN_RUNS_NOTEBOOKS = ("notebooks/08_any_vae.ipynb",)  # notebooks that reuse none of the smoke reproduction's runs


@pytest.hookimpl(optionalhook=True)  # the suite also runs without pytest-xdist installed
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (`-n 2`, as .ci/run runs the suite) each test module is one unit of work, as with
    `--dist loadscope`, except that the smoke reproduction (tests/test_reproduce.py) and the notebooks that reuse its
    runs form one unit: one worker runs them in collection order, so that those notebooks reuse what the
    reproduction trained in that worker's SMOKE_OUT, and each notebook's cells share one kernel. Notebook 08 trains
    its own (pythae) runs and goes to either worker, as a module does. (A scheduler, not `xdist_group` marks: xdist
    3.8 renames the node ids of marked tests, which pytest 9.2 no longer lets it do.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SmokeRunsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(("notebooks/", "tests/test_reproduce.py::")) and not \
                    nodeid.startswith(OWN_RUNS_NOTEBOOKS):
                return "smoke runs"
            return super()._split_scope(nodeid)

    return SmokeRunsTogether(config, log)


@pytest.fixture(scope="session")
def smoke_out():
    return SMOKE_OUT


# A per-session cache, so that tests never read a user's (its datasets, its FID weights): for the library (its data
# defaults) and for every process the tests start (the lsr command and the notebooks read $LSR_CACHE), set before
# any fixture of any scope runs.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="lsr-cache-"))
_OUTPUTS = pytest.StashKey[set]()
os.environ["LSR_CACHE"] = str(SESSION_CACHE)


def _project_outputs() -> set:
    """What the project's runs/ folder holds, two levels deep (runs/<dataset>/<run>)."""
    runs = ROOT / "runs"
    return {str(p.relative_to(ROOT)) for p in [*runs.glob("*"), *runs.glob("*/*")]}


def pytest_configure(config):
    from lsr_utils.data.cache import set_defaults

    set_defaults(cache=SESSION_CACHE, offline=True)
    config.pluginmanager.register(_SmokeRuns(), "lsr-smoke-runs")
    config.stash[_OUTPUTS] = _project_outputs()


def pytest_sessionfinish(session, exitstatus):
    """No test writes into the project's runs/ (every test has its own folder; the notebooks get SMOKE_OUT): a
    session that left something new there fails, naming it. Checked where the whole session ran (not in a
    pytest-xdist worker, which sees only its share)."""
    if XDIST_WORKER or _OUTPUTS not in session.config.stash:
        return
    new = sorted(_project_outputs() - session.config.stash[_OUTPUTS])
    if new:
        session.config.get_terminal_writer().line(
            f"tests wrote into the project's runs/ folder: {', '.join(new[:5])}{' ...' if len(new) > 5 else ''}",
            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


def run_folder(cfg, out):
    """The run folder ``cfg`` (a VAEConfig or GANConfig) trains into, its data loaded as its training loads them."""
    from lsr_utils.data import load_data
    from lsr_utils.method.config import GANConfig
    from lsr_utils.training.train import run_path

    v = cfg.vae if isinstance(cfg, GANConfig) else cfg
    return run_path(cfg, load_data(v.dataset, n_train=v.n_train, n_test=1, seed=v.data_seed, progress=False), out)
