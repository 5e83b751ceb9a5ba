"""`lsr reproduce`: the plan, a smoke reproduction killed part-way and resumed, the submitit executor, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lsr_utils.apps.cli import main
from lsr_utils.training.loop import RunOptions

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_of_the_paper_profile_lists_the_papers_runs(capsys, tmp_path):
    code = main(["reproduce", "--profile", "paper", "--dry-run", "--out", str(tmp_path), "--device", "cpu",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    for b in ("0.01", "0.1", "0.5", "1", "5", "10", "15", "20"):  # Table 1's betas, Table 2's lambdas
        assert f"vae-b{b} " in out and f"gan-b{b}-l1 " in out and (b == "1" or f"gan-b1-l{b} " in out)
    assert "2,000,000" in out and "10,000,000" in out  # 20,000 shapes x the paper's 100 (VAE) and 500 epochs
    assert "notebook-03" in out and "report" in out and "estimated" in out
    assert not any(tmp_path.rglob("*.pt"))  # a dry run trains nothing


@pytest.mark.parametrize("argv,needle", [
    (["--profile", "huge"], "unknown profile 'huge'; valid profiles: smoke, quick, paper"),
    (["--dataset", "cifar100"], "valid datasets: shapes"),
    (["--dataset", "cifar10", "--data-root", "{tmp}/nothing"], "Put the files in one of"),
    (["--executor", "submitit", "--cluster", "slurm"], "no SLURM here"),
    (["--budget", "0.2"], "too short to reach a checkpoint"),
    (["--jobs", "2"], "apply to --executor submitit"),
    (["--only", "no-such-unit"], "no unit named no-such-unit"),
])
def test_bad_input_stops_before_anything_runs(capsys, tmp_path, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "out"), "--no-progress", *argv]
                if "--profile" not in argv else ["reproduce", "--out", str(tmp_path / "out"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pt"))


def test_submitit_missing_says_so(capsys, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_submitit(name, *a, **k):
        if name == "submitit":
            raise ImportError("no submitit")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    code = main(["reproduce", "--profile", "smoke", "--executor", "submitit", "--out", str(tmp_path)])
    assert code == 2 and "needs the submitit package" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _records(out: Path) -> dict:
    recs = {}
    for f in out.rglob("metrics.json"):
        d = json.loads(f.read_text())
        if "values" in d:
            recs[(d["beta"], d["lam"], d["run"].split("/")[-2])] = d
    return recs


@pytest.fixture(scope="module")
def smoke(smoke_out):
    """`lsr reproduce --profile smoke`, killed during its training and run again (a real process, twice). Its runs are
    the session's shared smoke runs (conftest.SMOKE_OUT), which the notebooks under nbval then reuse."""
    out = smoke_out
    env = dict(os.environ, LSR_PROGRESS="0")
    cmd = [sys.executable, "-m", "lsr_utils.apps.cli", "reproduce", "--profile", "smoke", "--out", str(out),
           "--device", "cpu", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.rglob("gan-*/weights.pt")):
        time.sleep(0.2)  # until the first LSR-GAN has finished: the VAEs are done, more training is to come
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # runs marked finished when it was killed (weights.pt is written just before run.json says so: a run killed in
    # between is unfinished, and training it again is right)
    first = [p for p in out.rglob("weights.pt")
             if json.loads((p.parent / "run.json").read_text()).get("status") == "finished"]
    assert first, "the reproduction was killed before it finished any run"
    mtimes = {p: p.stat().st_mtime_ns for p in first}
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    return out, again, mtimes


def test_smoke_reproduction_resumes_and_produces_everything(smoke):
    out, again, mtimes = smoke
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for p, t in mtimes.items():  # finished runs were not trained again
        assert p.stat().st_mtime_ns == t, f"{p} was trained again"
    res = out / "results"
    assert (res / "report.md").is_file() and (res / "claims.md").is_file()
    assert (res / "seed_spread_shapes_smoke.json").is_file()
    for fig in ("figure1_shapes", "figure3_shapes", "figure4_shapes", "figure5_shapes", "figure6_shapes",
                "samples_shapes"):
        assert (out / "figures" / f"{fig}.png").is_file(), fig
    for nb in ("01", "02", "03", "04", "05", "06"):
        assert list((out / "notebooks").glob(f"{nb}_*.ipynb")), nb
    md = (res / "report.md").read_text()
    assert "## shapes, smoke profile" in md and "(paper:" not in md
    timing = json.loads((res / "reproduce_shapes_smoke.json").read_text())
    killed, last = timing["sittings"]  # the killed sitting kept what it had finished before the kill
    assert killed["ended"] is False and last["ended"] is True
    assert killed["units"]["classifier"]["status"] == "done" and "report" not in killed["units"]
    assert timing["total_seconds"] == pytest.approx(killed["seconds"] + last["seconds"], abs=0.2)
    units = last["units"]
    assert set(units) >= {"classifier", "vae-b1", "gan-b1-l1", "report"}
    assert all(u["status"] == "done" for u in units.values())
    # the command as given, its --out written relative to the working directory where it lies inside it, else by
    # its last name alone (no machine path on record)
    words = last["command"].split()
    rel = os.path.relpath(out)
    want = f".../{out.name}" if rel == ".." or rel.startswith(".." + os.sep) else rel
    assert words[words.index("--out") + 1] == want and not any(os.path.isabs(w) for w in words)
    recs = _records(out)
    assert {(r[0], r[1]) for r in recs} >= {(0.1, 1.0), (1.0, 1.0), (20.0, 1.0), (1.0, 0.1), (1.0, 10.0)}


def test_a_finished_reproduction_plans_no_work_but_its_notebooks_and_report(smoke):
    """The plan marks reused evaluations, the seed spread and the classifier done (0 s), not only training."""
    from lsr_utils.apps.reproduce import estimate, plan

    out, _, _ = smoke
    p = plan("shapes", "smoke", out=out, device="cpu", progress=False)
    estimate(p, {"vae": 100.0, "gan": 100.0}, "shapes", "smoke")
    rest = {r["unit"]: (r["status"], r["seconds"]) for r in p.rows if not r["unit"].startswith(("notebook", "report"))}
    assert {"classifier", "evaluate-b1-l1", "seed-spread"} <= set(rest)
    assert all(v == ("done", 0.0) for v in rest.values()), rest


def test_submitit_local_executor_gives_the_same_records(smoke, tmp_path):
    """One evaluation unit of the plan through submitit jobs: the LSR-GAN it needs trained in a job, then measured
    in another, gives the record the in-process reproduction gave. Its classifier and VAE are the smoke
    reproduction's, copied (the jobs reuse them, as a reproduction continued elsewhere would)."""
    import shutil

    pytest.importorskip("submitit")
    out, _, _ = smoke
    sub = tmp_path / "sub"
    wanted = next(r for r in _records(out).values() if (r["beta"], r["lam"], r["seed"]) == (1.0, 1.0, 13))
    vae_name = wanted["run"].split("/")[1]
    for src in [*(out / "runs" / "shapes").glob("classifier-*"), out / "runs" / "shapes" / vae_name]:
        shutil.copytree(src, sub / "runs" / "shapes" / src.name, ignore=shutil.ignore_patterns("gan-*"))
    code = subprocess.run([sys.executable, "-m", "lsr_utils.apps.cli", "reproduce", "--profile", "smoke", "--out",
                           str(sub), "--device", "cpu", "--no-progress", "--executor", "submitit", "--cluster",
                           "local", "--only", "evaluate-b1-l1"], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, LSR_PROGRESS="0"))
    assert code.returncode == 0, code.stdout[-3000:] + code.stderr[-3000:]
    assert "submitted as job" in code.stdout and "gan-b1-l1" in code.stdout
    assert (sub / "runs" / wanted["run"] / "weights.pt").is_file()  # trained there, by a job
    a, b = _records(out), _records(sub)
    key = next(k for k in b if k[:2] == (1.0, 1.0))
    ra, rb = a[key], b[key]
    assert ra["run"] == rb["run"]  # the same run folder names: the same configurations and data
    for k, v in ra["values"].items():
        if isinstance(v, dict) and "mean" in v:
            assert rb["values"][k]["mean"] == pytest.approx(v["mean"], rel=1e-3, abs=1e-4), k


def _interrupted():
    from lsr_utils.base.errors import Interrupted
    raise Interrupted("interrupted; progress is saved in X. Run the same command again to resume.")


def _failing():
    from lsr_utils.base.errors import LsrError
    raise LsrError("a unit's own problem")


def test_ctrl_c_stops_the_whole_plan_but_a_failed_unit_does_not():
    """Ctrl-C inside one unit's training stops the reproduction (it used to go on to the next unit)."""
    from lsr_utils.apps.jobs import LocalExecutor, Unit
    from lsr_utils.base.errors import Interrupted

    ran = []
    later = Unit("later", lambda: ran.append("later") or {"status": "done"})
    with pytest.raises(Interrupted):
        LocalExecutor().run([Unit("train", _interrupted), later], say=lambda s: None)
    assert ran == []
    out = LocalExecutor().run([Unit("train", _failing), later], say=lambda s: None)
    assert out["train"].status == "error" and out["later"].status == "done" and ran == ["later"]


def test_no_unit_starts_after_the_budget_is_spent():
    """--budget: a training unit checkpoints at the deadline, and no later unit (an evaluation, a notebook) starts
    after it (evaluations and notebooks used to run on past the budget)."""
    from lsr_utils.apps.jobs import LocalExecutor, Unit

    ran = []
    first = Unit("first", lambda: ran.append("first") or time.sleep(0.3) or {"status": "done"})
    later = Unit("later", lambda: ran.append("later") or {"status": "done"}, deps=("first",))
    out = LocalExecutor().run([first, later], say=lambda s: None, deadline=time.time() + 0.1)
    assert ran == ["first"] and out["first"].status == "done"
    assert out["later"].status == "skipped" and out["later"].message == "time is up"
    ran.clear()
    out = LocalExecutor().run([first, later], say=lambda s: None, deadline=time.time() + 60)
    assert ran == ["first", "later"] and out["later"].status == "done"


def test_submitit_submits_no_job_after_the_budget_is_spent(tmp_path):
    """--budget with --executor submitit: a job not yet submitted when the time is up is not submitted (the
    submitit executor used to send every wave whatever the budget)."""
    pytest.importorskip("submitit")
    from lsr_utils.apps.jobs import SubmititExecutor, Unit

    first = Unit("first", time.sleep, (2.0,))  # a job that outlasts the budget (picklable: a library function)
    later = Unit("later", time.sleep, (0.0,), deps=("first",))
    ex = SubmititExecutor("local", folder=tmp_path / "jobs")
    said = []
    out = ex.run([first, later], say=said.append, deadline=time.time() + 1.0)
    assert out["first"].status == "done"
    assert out["later"].status == "skipped" and out["later"].message == "time is up"
    assert not any("[later] submitted" in s for s in said)


def _probe(seconds: float) -> dict:
    """A unit that reports when it ran and with how many torch threads."""
    t0 = time.time()
    time.sleep(seconds)
    return {"status": "done", "value": {"threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS"),
                                        "start": t0, "end": time.time()}}


def test_submitit_runs_jobs_at_once_each_with_its_share_of_the_cores(tmp_path, monkeypatch):
    """--jobs 2 on a CPU: two ready units run at the same time, each with half the cores as torch threads (and as
    OMP_NUM_THREADS for the notebooks' kernels), the costliest first; a unit starts when its dependency is done."""
    pytest.importorskip("submitit")
    import cloudpickle

    from lsr_utils.apps.jobs import SubmititExecutor, Unit
    from lsr_utils.base.errors import LsrError

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job imports this test's functions by value
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)  # not torch's default here, so the share is seen
    units = [Unit("short", _probe, (4.0,), cost_s=1.0), Unit("long", _probe, (4.0,), cost_s=9.0),
             Unit("after", _probe, (0.0,), deps=("short",))]
    said = []
    out = SubmititExecutor("local", folder=tmp_path / "jobs", jobs=2).run(units, say=said.append)
    assert {o.status for o in out.values()} == {"done"}, out
    s, lg, a = (out[n].value for n in ("short", "long", "after"))
    assert s["threads"] == lg["threads"] == 3 and s["omp"] == lg["omp"] == "3"
    assert max(s["start"], lg["start"]) < min(s["end"], lg["end"])  # at the same time
    assert a["start"] >= s["end"]
    subs = [x.split("]")[0][1:] for x in said if "submitted" in x]
    assert subs == ["long", "short", "after"]
    with pytest.raises(LsrError, match="--jobs"):
        SubmititExecutor("local", folder=tmp_path / "jobs", jobs=0)


def _write_later(path: str, seconds: float) -> dict:
    time.sleep(seconds)
    Path(path).write_text("the job was not stopped")
    return {"status": "done"}


def test_ctrl_c_stops_the_submitit_jobs_in_flight(tmp_path):
    """Ctrl-C during a submitit reproduction stops its local jobs too (they used to train on, orphaned, after the
    command had said "interrupted"): each is sent SIGINT, so a training run checkpoints, and is waited for. Also
    when the command itself was started ignoring SIGINT (its jobs used to inherit that, and ran on)."""
    pytest.importorskip("submitit")
    import cloudpickle

    from lsr_utils.apps.jobs import SubmititExecutor, Unit

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "marker"
    said = []

    def ctrl_c_once_submitted(text):
        said.append(text)
        if "submitted" in text:
            time.sleep(0.5)  # the job may not have started its program yet: it must be stopped all the same
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a program a script started in the background
    try:
        with pytest.raises(KeyboardInterrupt):
            SubmititExecutor("local", folder=tmp_path / "jobs").run(
                [Unit("slow", _write_later, (str(marker), 8.0))], say=ctrl_c_once_submitted)
    finally:
        signal.signal(signal.SIGINT, old)
    assert any("stopping job" in s for s in said), said
    time.sleep(8.0)
    assert not marker.exists()


def test_quick_profile_trains_six_of_the_papers_sweep_values_as_its_notebooks_do(tmp_path):
    """The quick profile leaves beta and lambda 0.5 and 15 out (to fit 2 hours on a 2-core CPU); the plan and
    notebooks 03-04 take the values from the one place, so the notebooks never train a run the plan left out."""
    from lsr_utils.apps.reproduce import plan

    names = {u.name for u in plan("shapes", "quick", out=tmp_path, device="cpu", progress=False).units}
    kept, left_out = ("0.01", "0.1", "1", "5", "10", "20"), ("0.5", "15")
    assert all(f"vae-b{b}" in names and f"gan-b{b}-l1" in names and f"evaluate-b1-l{b}" in names for b in kept)
    assert not any(n.endswith((f"b{v}", f"b{v}-l1", f"-l{v}")) for n in names for v in left_out)
    for nb, var, i in (("03_beta_sweep", "betas", 0), ("04_lambda_sweep", "lams", 1)):
        code = "".join("".join(c["source"]) for c in json.loads((ROOT / "notebooks" / f"{nb}.ipynb").read_text())
                       ["cells"] if c["cell_type"] == "code")
        assert f"{var} = list(sweep_values(ctx.profile)[{i}])" in code, nb


def test_appendix_a_waits_only_for_the_vae_it_reuses(tmp_path):
    """Notebook 06 trains its own two VAEs and reuses Table 1's beta = 1 VAE: it depends on that training unit
    alone (so that it runs beside the rest under --jobs), while the other notebooks wait for every evaluation."""
    from lsr_utils.apps.reproduce import plan

    p = plan("shapes", "smoke", out=tmp_path, device="cpu", progress=False)
    deps = {u.name: set(u.deps) for u in p.units}
    assert deps["notebook-06"] == {"vae-b1"}
    evals = {n for n in deps if n.startswith("evaluate-")}
    assert evals and all(evals | {"seed-spread"} <= deps[f"notebook-0{i}"] for i in range(1, 6))
    assert deps["report"] >= {f"notebook-0{i}" for i in range(1, 7)}


def test_plan_counts_what_a_started_run_has_left(tmp_path):
    """A run stopped part-way is shown with its share done, and only the rest is estimated."""
    from lsr_utils.apps.reproduce import _image_steps, _steps_left
    from lsr_utils.data import load_data
    from lsr_utils.method.config import make_config
    from lsr_utils.training.loop import OutOfTime
    from lsr_utils.training.train import train_vae

    cfg = make_config("smoke").vae
    data = load_data("shapes", n_train=cfg.n_train, n_test=16)
    total = _image_steps(cfg, data)
    assert _steps_left(cfg, data, tmp_path) == total  # nothing trained yet
    with pytest.raises(OutOfTime):  # a deadline already past: one step, a checkpoint, stop
        train_vae(cfg, data, out=tmp_path, device="cpu", options=RunOptions(progress=False, deadline=time.monotonic()))
    assert _steps_left(cfg, data, tmp_path) == total - cfg.batch_size
    train_vae(cfg, data, out=tmp_path, device="cpu", options=RunOptions(progress=False))
    assert _steps_left(cfg, data, tmp_path) == 0


def test_sittings_add_up_and_a_damaged_record_is_set_aside(tmp_path):
    from lsr_utils.apps.jobs import Outcome
    from lsr_utils.apps.reproduce import record_sitting

    path = tmp_path / "reproduce_shapes_quick.json"
    a = {"vae-b1": Outcome("vae-b1", "out_of_time", seconds=50.0)}
    b = {"vae-b1": Outcome("vae-b1", "done", seconds=20.0), "report": Outcome("report", "done", seconds=1.0)}
    record_sitting(path, a, time.time() - 60, "lsr reproduce --budget 1", torch.device("cpu"), {"vae": 250.0, "gan": 280.0})
    record_sitting(path, b, time.time() - 30, "lsr reproduce --budget 1", torch.device("cpu"), {"vae": 250.0, "gan": 280.0})
    rec = json.loads(path.read_text())
    assert [s["units"]["vae-b1"]["status"] for s in rec["sittings"]] == ["out_of_time", "done"]
    assert rec["total_seconds"] == pytest.approx(90, abs=5)
    t = time.time() - 5  # a sitting rewrites its own entry after each unit, then closes it
    record_sitting(path, a, t, "lsr reproduce", torch.device("cpu"), {"vae": 1.0, "gan": 1.0}, ended=False)
    record_sitting(path, b, t, "lsr reproduce", torch.device("cpu"), {"vae": 1.0, "gan": 1.0})
    rec = json.loads(path.read_text())
    assert [s["units"]["vae-b1"]["status"] for s in rec["sittings"]] == ["out_of_time", "done", "done"]
    assert [s["ended"] for s in rec["sittings"]] == [True, True, True]
    assert rec["total_seconds"] == pytest.approx(95, abs=5)
    path.write_text("{not json")
    record_sitting(path, b, time.time() - 10, "lsr reproduce", torch.device("cpu"), {"vae": 1.0, "gan": 1.0})
    assert (tmp_path / "reproduce_shapes_quick.json.damaged").read_text() == "{not json"
    assert len(json.loads(path.read_text())["sittings"]) == 1


def test_a_fresh_reproduction_starts_its_own_record(tmp_path):
    """A sitting that finds nothing of its plan done (a fresh clone holding another machine's committed record)
    does not add the earlier sittings to its time: it starts a new record and keeps the old one as .previous."""
    from lsr_utils.apps.jobs import Outcome
    from lsr_utils.apps.reproduce import record_sitting

    path = tmp_path / "reproduce_shapes_quick.json"
    old = {"vae-b1": Outcome("vae-b1", "done", seconds=500.0)}
    record_sitting(path, old, time.time() - 600, "lsr reproduce", torch.device("cpu"), {"vae": 1.0, "gan": 1.0})
    before = path.read_text()
    t = time.time() - 20
    b = {"vae-b1": Outcome("vae-b1", "done", seconds=20.0)}
    for ended in (False, True):  # rewritten after each unit, then closed: the old record is set aside once
        record_sitting(path, b, t, "lsr reproduce", torch.device("cpu"), {"vae": 1.0, "gan": 1.0}, ended=ended,
                       fresh=True)
        rec = json.loads(path.read_text())
        assert len(rec["sittings"]) == 1 and rec["total_seconds"] == pytest.approx(20, abs=5)
        assert (tmp_path / "reproduce_shapes_quick.json.previous").read_text() == before
