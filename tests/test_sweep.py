"""`lsr sweep`: one executed copy per value, resumable, failures kept and reported, unknown parameters refused."""
import json
from pathlib import Path

import nbformat
import pytest

from lsr_utils.apps.cli import main
from lsr_utils.apps.notebook import execute, setup, sweep
from lsr_utils.base.errors import LsrError

pytest.importorskip("papermill")


def make_notebook(path, body, manifest: bool = False):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("beta = 1.0\nprofile = None" + ("\nmanifest = None" if manifest else ""))
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


BODY = """
import pathlib
if beta == 5.0:
    raise ValueError("beta five is broken")
pathlib.Path("log.txt").open("a").write(f"{beta}\\n")
"""


def test_sweep_runs_resumes_and_keeps_failures(tmp_path):
    nb = make_notebook(tmp_path / "point.ipynb", BODY)
    res = sweep(nb, "beta", [0.1, 1.0, 5.0], out=tmp_path / "sw", progress=False)
    assert res["done"] == [0.1, 1.0] and [f["value"] for f in res["failed"]] == [5.0]
    failed = res["failed"][0]
    assert "code cell 3 of the executed copy" in failed["cell"] and "import pathlib" in failed["cell"] and "beta five is broken" in failed["cell"]
    assert (tmp_path / "sw" / "point" / "beta=5.0.ipynb").exists()  # kept for inspection
    assert (tmp_path / "log.txt").read_text().split() == ["0.1", "1.0"]
    again = sweep(nb, "beta", [0.1, 1.0, 5.0], out=tmp_path / "sw", progress=False)
    assert again["skipped"] == [0.1, 1.0] and again["done"] == []  # finished values not redone
    assert (tmp_path / "log.txt").read_text().split() == ["0.1", "1.0"]
    executed = json.loads((tmp_path / "sw" / "point" / "beta=1.0.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])


def test_unknown_parameter_is_an_error(tmp_path):
    nb = make_notebook(tmp_path / "point.ipynb", "x = 1")
    with pytest.raises(LsrError, match=r"unknown parameter\(s\) \['gamma'\]; this notebook takes: beta, profile"):
        sweep(nb, "gamma", [1], out=tmp_path / "sw", progress=False)
    with pytest.raises(LsrError, match="unknown parameter"):
        execute(nb, tmp_path / "o.ipynb", {"beta": 2, "lam": 3})


def test_sweep_cli_reports_failure_exit_code(tmp_path, capsys):
    nb = make_notebook(tmp_path / "point.ipynb", BODY)
    code = main(["sweep", str(nb), "--param", "beta", "--values", "1", "5", "--out", str(tmp_path / "sw"),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "1 ran" in out and "FAILED beta=5:" in out and "kept for inspection" in out
    code = main(["sweep", str(nb), "--param", "nope", "--values", "1", "--out", str(tmp_path / "sw")])
    assert code == 2 and "unknown parameter" in capsys.readouterr().err


def test_smoke_outputs_never_overwrite_committed_figures(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lsr-kit"\n')
    ctx = setup(profile="smoke", root=tmp_path)
    assert ctx.figures == tmp_path / "runs" / "_smoke" / "figures"
    assert setup(profile="quick", root=tmp_path).figures == tmp_path / "figures"


SLOW_BODY = """
import pathlib, time
pathlib.Path("started.txt").open("a").write(f"{beta}\\n")
if beta == 2.0:
    time.sleep(120)
pathlib.Path("log.txt").open("a").write(f"{beta}\\n")
"""


def test_sweep_killed_midway_resumes_without_redoing_work(tmp_path):
    """A real `lsr sweep` process killed while its second value runs; the rerun does only what is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    nb = make_notebook(tmp_path / "point.ipynb", SLOW_BODY)
    cmd = [sys.executable, "-m", "lsr_utils.apps.cli", "sweep", str(nb), "--param", "beta", "--values", "1.0", "2.0", "3.0",
           "--out", str(tmp_path / "sw"), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    started = tmp_path / "started.txt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (started.exists() and "2.0" in started.read_text()):
        time.sleep(0.5)
    assert started.exists() and "2.0" in started.read_text(), "the sweep never reached its second value"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the sweep and its kernel
    proc.wait()
    assert (tmp_path / "log.txt").read_text().split() == ["1.0"]
    assert not (tmp_path / "sw" / "point" / "beta=2.0.done").exists()

    # the rerun: value 1 is skipped, value 2 (unfinished) is run again, value 3 runs
    nb2 = make_notebook(tmp_path / "point.ipynb", SLOW_BODY.replace("time.sleep(120)", "pass"))
    res = sweep(nb2, "beta", [1.0, 2.0, 3.0], out=tmp_path / "sw", progress=False)
    assert res["skipped"] == [1.0] and res["done"] == [2.0, 3.0] and not res["failed"]
    assert (tmp_path / "log.txt").read_text().split() == ["1.0", "2.0", "3.0"]


def test_claims_are_recorded_and_gathered(tmp_path, capsys):
    from lsr_utils.apps.notebook import claim, write_results
    from lsr_utils.measurement.report import write_claims

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lsr-kit"\n')
    ctx = setup(profile="quick", root=tmp_path, name="01_test")
    assert write_claims(ctx.results) is None  # nothing recorded yet
    c1 = claim("Figure 1", "more variation at beta=20", True, "0.1 -> 0.5")
    c2 = claim("Table 2", "MSE falls", False, "40 -> 45")
    assert "NOT reproduced (40 -> 45)" in capsys.readouterr().out
    write_results(ctx, "fig1", {"x": 1}, claims=[c1, c2], figures=["figure1_shapes.png"])
    md = write_claims(ctx.results).read_text()
    assert "| Figure 1 | more variation at beta=20 | `01_test` (quick) | reproduced | 0.1 -> 0.5 | " \
           "[figure1_shapes.png](../figures/figure1_shapes.png) |" in md
    assert "**not reproduced**" in md and "1 of 2 claims reproduced" in md
    with pytest.raises(LsrError, match="lacks"):
        write_results(ctx, "bad", {}, claims=[{"claim": "x"}])


def test_sweep_report_is_built_from_exactly_the_runs_it_made_or_reused(tmp_path):
    """Each executed copy lists the records it made; the sweep's tables hold those and nothing else."""
    import json as _json

    good = {"dataset": "shapes", "profile": "smoke", "lam": 1.0, "vae_epochs": 1, "gan_epochs": 1, "n_test": 10,
            "values": {"mse_vae": {"mean": 1.0, "sem": 0.1}}, "provenance": {"evaluated": "2026-01-01T00:00:00"}}
    other = tmp_path / "elsewhere" / "metrics.json"  # a record of another run, present but not made by the sweep
    other.parent.mkdir()
    other.write_text(_json.dumps({**good, "beta": 9.0, "run": "shapes/vae-b9-e1-00000000/gan-l1-e1-00000000"}))
    body = """
import json, pathlib
from lsr_utils.base.files import record_manifest
rec = dict(RECORD, beta=beta, run=f"shapes/vae-b{beta:g}-e1-11111111/gan-l1-e1-22222222")
p = pathlib.Path(OUT) / f"rec-{beta}.json"
p.write_text(json.dumps(rec))
record_manifest(manifest, p)  # the sweep gives each copy its manifest as a parameter
""".replace("RECORD", repr(good)).replace("OUT", repr(str(tmp_path)))
    nb = make_notebook(tmp_path / "point.ipynb", body, manifest=True)
    res = sweep(nb, "beta", [0.5, 1.0], out=tmp_path / "sw", progress=False)
    assert res["done"] == [0.5, 1.0] and res["report"]
    md = (tmp_path / "sw" / "point" / "report" / "report.md").read_text()
    assert "## shapes, smoke profile" in md
    assert "vae-b0.5-e1-11111111" in md and "vae-b1-e1-11111111" in md
    assert "vae-b9" not in md  # a record the sweep did not make is not in its tables


def test_datasets_of_notebook_05_follow_the_reproduction(tmp_path):
    """lsr reproduce gives 05 its own dataset (the runs its plan counts), as a parameter; names are checked."""
    ctx = setup(profile="quick", root=tmp_path, environ={})
    assert ctx.datasets() == ["shapes", "mnist", "cifar10", "celeba", "imagenet64"]
    assert ctx.datasets(["shapes"]) == ["shapes"] and ctx.datasets("shapes, cifar10") == ["shapes", "cifar10"]
    with pytest.raises(LsrError, match="cifar100"):
        ctx.datasets("shapes,cifar100")


def test_the_environment_is_read_only_at_the_edges():
    """No library module reads an environment variable: only lsr_utils.apps.environ (called by the lsr command and a
    notebook's setup) and the job runner's process start."""
    import re

    root = Path(__file__).resolve().parents[1] / "lsr_utils"
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text()))
    assert readers == ["apps/cli.py", "apps/environ.py", "apps/jobs.py", "apps/notebook.py"], readers
