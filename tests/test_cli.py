"""The `lsr` command: each bad input exits non-zero with one clear message and touches no run."""
import os
import subprocess
import sys

import pytest
import torch
from conftest import run_folder

from lsr_utils.apps.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


SMOKE = ("--profile", "smoke", "--n-train", "64", "--no-progress")


@pytest.mark.parametrize("argv,needle", [
    (("train-vae", "--dataset", "cifar100"), "valid datasets: shapes, mnist, mnist-test, fashion-mnist, cifar10"),
    (("train-vae", "--beta", "-1"), "beta must be >= 0"),
    (("train-vae", "--beta", "abc"), "beta must be a number"),
    (("train-gan", "--lam", "-0.5"), "lambda must be >= 0"),
    (("train-gan", "--lam", "nan"), "lambda must be a finite number"),
    (("train-vae", "--beta", "inf"), "beta must be a finite number"),
    (("train-vae", "--seed", "1180591620717411303424"), "seed must be an integer from 0 to"),
    (("train-vae", "--n-train", "1", "--profile", "smoke"), "1 training images cannot fill one batch of 32"),
    (("train-vae", "--batch-size", "1000", "--n-train", "64", "--profile", "smoke"),
     "64 training images cannot fill one batch of 1000"),
    (("train-vae", "--epochs", "0"), "epochs must be >= 1"),
    (("train-vae", "--epochs", "2.5"), "epochs must be an integer"),
    (("train-vae", "--profile", "huge"), "unknown profile 'huge'; valid profiles: smoke, quick, paper"),
    (("train-vae", "--device", "cuda", "--profile", "smoke"), "no CUDA GPU"),
    (("demo", "--profile", "fast"), "unknown profile"),
    (("train-vae", "--bogus"), "unrecognized arguments: --bogus"),
    (("train-classifier", "--dataset", "cifar100"), "valid datasets"),
    (("train-classifier", "--profile", "huge"), "unknown profile"),
    (("train-classifier", "--epochs", "0"), "epochs must be >= 1"),
])
def test_bad_input_one_message(capsys, tmp_path, argv, needle):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, out, err = run_cli(capsys, *argv, "--out", str(tmp_path))
    assert code == 2
    assert needle in err
    assert err.startswith("lsr: error:") and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # touched nothing


def test_compile_refused_without_a_compiler(capsys, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, out, err = run_cli(capsys, "train-vae", "--compile", "--device", "cpu", *SMOKE, "--out", str(tmp_path))
    assert code == 2
    assert "needs a C++ compiler" in err and "drop --compile" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_train_classifier_missing_data_offline(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train-classifier", "--dataset", "cifar10", "--data-root", str(tmp_path),
                             "--profile", "smoke", "--out", str(tmp_path / "runs"))
    assert code == 2
    assert "cifar10" in err.lower()


def test_missing_data_offline_says_where(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train-vae", "--dataset", "cifar10", "--data-root", str(tmp_path / "d"),
                           "--out", str(tmp_path / "runs"), *SMOKE)
    assert code == 2 and "cifar-10-batches-py" in err and "--data-root" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))


def test_train_resume_and_refuse_different_config(capsys, tmp_path):
    out = str(tmp_path / "runs")
    code, stdout, err = run_cli(capsys, "train-vae", "--epochs", "1", "--out", out, *SMOKE)
    assert code == 0 and "done:" in stdout
    from lsr_utils.method.config import make_config

    path = run_folder(make_config("smoke", n_train=64, vae_epochs=1).vae, out)
    assert (path / "weights.pt").exists()
    before = (path / "weights.pt").read_bytes()
    # same configuration again: reused, not retrained
    code, _, err = run_cli(capsys, "train-vae", "--epochs", "1", "--out", out, *SMOKE)
    assert code == 0 and "reusing finished run" in err
    # --resume with a different beta: refused, showing the difference, run untouched
    code, _, err = run_cli(capsys, "train-vae", "--resume", str(path), "--beta", "5", *SMOKE)
    assert code == 2 and "beta: 1.0 -> 5.0" in err and "refusing" in err
    assert (path / "weights.pt").read_bytes() == before


def test_corrupt_checkpoint_via_cli(capsys, tmp_path):
    from lsr_utils.method.config import make_config

    out = tmp_path / "runs"
    path = run_folder(make_config("smoke", n_train=64, vae_epochs=1).vae, out)
    path.mkdir(parents=True)
    (path / "checkpoint.pt").write_bytes(b"\x00garbage")
    code, _, err = run_cli(capsys, "train-vae", "--epochs", "1", "--out", str(out), *SMOKE)
    assert code == 2 and "checkpoint.pt" in err and "corrupt" in err and "Traceback" not in err
    assert (path / "checkpoint.pt").read_bytes() == b"\x00garbage"


def test_console_script_runs_as_a_process(tmp_path):
    env = dict(os.environ, LSR_PROGRESS="0")
    r = subprocess.run([sys.executable, "-m", "lsr_utils.apps.cli", "train-vae", "--beta", "oops"], capture_output=True,
                       text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "beta must be a number" in r.stderr


@pytest.mark.slow
def test_demo_smoke_writes_figure_and_metrics(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "demo", "--profile", "smoke", "--out", str(tmp_path / "runs"),
                           "--figures", str(tmp_path / "fig"), "--results", str(tmp_path / "res"), "--no-progress")
    assert code == 0 and "demo finished" in out
    import json

    rec = json.loads((tmp_path / "res" / "demo.json").read_text())
    assert (tmp_path / "fig" / "demo.png").stat().st_size > 1000 and (tmp_path / "fig" / "demo.pdf").exists()
    m = rec["values"]  # the demo's record is an evaluation record (as `lsr evaluate` writes) plus a demo section
    assert rec["profile"] == "smoke" and m["n_test"] == 128
    for key in ("mse_vae", "mse_lsr_gan", "sharpness_vae", "sharpness_lsr_gan", "variance_vae", "mse_vae_to_clean",
                "absolute_vae", "absolute_lsr_gan", "classifier_raw_accuracy"):
        assert m[key]["n"] > 0 and m[key]["mean"] >= 0
    assert len(rec["demo"]["checks"]) == 5 and rec["demo"]["schedule"]["n_train"] == 256
    for c in rec["demo"]["checks"]:  # every check is printed with its verdict
        assert f"[{'met' if c['passed'] else 'NOT MET'}] {c['check']}" in out
    lat = rec["latent"]  # how far the codes of real images spread against the prior LSR-GAN trains on
    assert len(lat["top_eigenvalues"]) == 8 and lat["top_eigenvalues"] == sorted(lat["top_eigenvalues"], reverse=True)
    assert "latent spread: covariance of mu(x), top eigenvalues" in out
    # the classification checks read the mean of a panel of classifiers (seeds of one recipe)
    from lsr_utils.apps.demo import PANEL_SEEDS, checked_values

    panel = rec["classifier_panel"]
    assert panel["classifiers"] == [f"seed {s}" for s in PANEL_SEEDS]
    p = panel["absolute_lsr_gan"]
    assert len(p["readings"]) == len(PANEL_SEEDS) and p["readings"][0] == round(m["absolute_lsr_gan"]["mean"], 2)
    assert abs(p["mean"] - sum(p["readings"]) / len(p["readings"])) < 0.01 and p["min"] <= p["mean"] <= p["max"]
    assert checked_values(rec)["absolute_lsr_gan"]["mean"] == p["mean"]
    assert "the classification checks read the mean of 5 classifiers" in out
    # the object's colour, measured without a target: the VAE's reconstructions keep it even in the smoke profile
    assert 0 <= m["hue_kept_lsr_gan"]["mean"] <= 100 and m["hue_kept_vae"]["n"] == 128
    assert f"kept by {m['hue_kept_vae']['mean']:.1f} % of VAE reconstructions" in out


@pytest.mark.slow
def test_ctrl_c_saves_and_rerun_matches_uninterrupted(tmp_path):
    """A real process interrupted with SIGINT keeps its progress; the rerun equals an uninterrupted run."""
    import signal
    import time

    from lsr_utils.method.config import make_config

    env = dict(os.environ, LSR_PROGRESS="0")
    args = [sys.executable, "-m", "lsr_utils.apps.cli", "train-vae", "--profile", "smoke", "--n-train", "128",
            "--epochs", "2", "--no-progress"]
    cfg = make_config("smoke", n_train=128, vae_epochs=2).vae
    ref = subprocess.run(args + ["--out", str(tmp_path / "a")], capture_output=True, text=True, env=env)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "b")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    path_b = run_folder(cfg, tmp_path / "b")
    deadline = time.monotonic() + 60
    while not (path_b / "checkpoint.pt").exists() and time.monotonic() < deadline:  # after the first epoch, in the second
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "interrupted; progress is saved" in err and "Traceback" not in err
    assert (path_b / "checkpoint.pt").exists() and not (path_b / "weights.pt").exists()
    again = subprocess.run(args + ["--out", str(tmp_path / "b")], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "resuming" in again.stderr
    wa = torch.load(run_folder(cfg, tmp_path / "a") / "weights.pt", weights_only=True)
    wb = torch.load(path_b / "weights.pt", weights_only=True)
    for part in ("encoder", "decoder"):
        for k in wa[part]:
            assert torch.equal(wa[part][k], wb[part][k]), (part, k)


def test_several_betas_or_lambdas_train_at_once(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train-vae", "--beta", "1", "4", "--stack", *SMOKE, "--out", str(tmp_path))
    assert code == 0, err
    assert "2 beta values: 0 finished (reused), 2 to train at once" in err
    done = [line.split("done: ")[1] for line in out.splitlines() if line.startswith("done: ")]
    assert len(done) == 2 and all((tmp_path / os.path.relpath(d, tmp_path) / "weights.pt").exists() for d in done)
    code, out, err = run_cli(capsys, "train-gan", "--beta", "1", "4", "--lam", "1", *SMOKE, "--out", str(tmp_path))
    assert code == 2 and "train-gan takes one --beta" in err
    code, out, err = run_cli(capsys, "train-gan", "--lam", "0.5", "2", "--fresh", *SMOKE, "--out", str(tmp_path))
    assert code == 2 and "--fresh applies to one run" in err


def test_the_recorded_command_carries_no_absolute_path():
    """A record's command names its data as given, but an absolute path is written relative to the working
    directory where it lies inside it, and by its last name alone where it lies outside (committed records must not
    carry the layout of the machine that made them)."""
    from lsr_utils.apps.cli import _command_line

    line = _command_line(["demo", "--data-root", "/srv/me/data", "--out=/srv/me/lsr/runs", "--seed", "13"],
                         cwd="/srv/me/lsr")
    assert line == "lsr demo --data-root .../data --out=runs --seed 13"
    line = _command_line(["demo", "--data-root", "../../shared/data", "--figures", "figs", "--results=../res"],
                         cwd="/srv/me/lsr")
    assert line == "lsr demo --data-root .../data --figures figs --results=.../res"
    assert "/srv" not in line and "me" not in line.split() and "shared" not in line
