"""Untrusted input: run folders, weights files, records and option values from elsewhere.

A run folder is someone else's data. No file the kit reads may run code, no
value may steer a write outside the output folder, and every bad input ends
in one clear message (exit 2), with nothing existing changed.
"""
import json
import os
import shutil

import pytest
import torch

from lsr_utils.apps.cli import main
from lsr_utils.base.errors import LsrError
from lsr_utils.training.loop import RunOptions


class Payload:
    """A pickled object that, if ever unpickled, creates a marker file (stands in for any shell command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def poison(path, marker, replace=False):
    """Rewrite a kit file with a payload as one extra key beside its genuine content (or as the whole file)."""
    obj = {"lsr_version": "0.1.0", "payload": Payload(marker)}
    if not replace:
        obj = {**torch.load(path, weights_only=True), "payload": Payload(marker)}
    torch.save(obj, path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished VAE + LSR-GAN pair and a classifier, trained in seconds."""
    from lsr_utils.data import load_data
    from lsr_utils.measurement.classifier import classifier_config, train_classifier
    from lsr_utils.method.config import make_config
    from lsr_utils.training.train import train_lsr_gan, train_vae

    out = tmp_path_factory.mktemp("trusted") / "runs"
    data = load_data("shapes", n_train=64, n_test=300)
    cfg = make_config("smoke", n_train=64, vae_epochs=1, gan_epochs=1)
    gan = train_lsr_gan(cfg, data, vae=train_vae(cfg.vae, data, out=out, options=RunOptions(progress=False)), out=out, options=RunOptions(progress=False))
    clf = train_classifier(classifier_config("shapes", "smoke", n_train=64, width=8), data, out=out, options=RunOptions(progress=False))
    return {"out": out, "cfg": cfg, "gan": gan.path, "vae": gan.path.parent, "clf": clf.path}


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(finished["out"], out)
    rel = lambda p: out / p.relative_to(finished["out"])
    return {"out": out, "cfg": finished["cfg"], "gan": rel(finished["gan"]), "vae": rel(finished["vae"]),
            "clf": rel(finished["clf"]), "marker": tmp_path / "PWNED"}


def _refused(err: str, marker):
    assert not marker.exists(), "code ran from a weights file"
    assert "refused to load" in err and "could run code" in err and "Traceback" not in err


@pytest.mark.parametrize("which", ["vae", "gan"])
def test_payload_in_weights_never_runs_on_reuse_or_load(copy, capsys, which):
    from lsr_utils.models.finished import load_run

    poison(copy[which] / "weights.pt", copy["marker"])
    with pytest.raises(LsrError) as e:
        load_run(copy["gan"])
    _refused(str(e.value), copy["marker"])
    assert str(copy[which] / "weights.pt") in str(e.value)
    # reusing the finished run through the CLI
    code = main(["train-gan", "--profile", "smoke", "--n-train", "64", "--vae-epochs", "1", "--epochs", "1",
                 "--out", str(copy["out"]), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    _refused(err, copy["marker"])


def test_payload_as_whole_file_is_refused(copy):
    from lsr_utils.models.finished import load_run

    poison(copy["gan"] / "weights.pt", copy["marker"], replace=True)
    with pytest.raises(LsrError) as e:
        load_run(copy["gan"])
    _refused(str(e.value), copy["marker"])


def test_payload_in_classifier_weights_never_runs(copy, capsys):
    poison(copy["clf"] / "weights.pt", copy["marker"])
    code = main(["evaluate", str(copy["gan"]), "--classifier", str(copy["clf"]), "--no-fid", "--no-progress",
                 "--n-test", "300"])
    assert code == 2
    _refused(capsys.readouterr().err, copy["marker"])


def test_payload_in_checkpoint_never_runs_on_resume(copy, capsys):
    from lsr_utils.base.files import load_tensors as torch_load

    ck_dir = copy["gan"]
    state = torch_load(ck_dir / "weights.pt", "weights file")
    # a crafted checkpoint for an unfinished run
    (ck_dir / "weights.pt").unlink()
    torch.save({"lsr_version": "0.1.0", "kind": "gan", "models": state, "payload": Payload(copy["marker"])},
               ck_dir / "checkpoint.pt")
    run_json = json.loads((ck_dir / "run.json").read_text())
    code = main(["train-gan", "--resume", str(ck_dir), "--no-progress"])
    assert code == 2
    _refused(capsys.readouterr().err, copy["marker"])
    assert json.loads((ck_dir / "run.json").read_text()) == run_json  # nothing rewritten


def test_payload_never_runs_when_the_explorer_lists_runs(copy):
    pytest.importorskip("ipywidgets")
    from lsr_utils.apps.widgets import LatentExplorer

    poison(copy["gan"] / "weights.pt", copy["marker"])
    explorer = LatentExplorer(copy["out"])
    assert not copy["marker"].exists()
    assert "refused to load" in explorer.message.value


def test_report_never_writes_outside_out(tmp_path, capsys):
    from lsr_utils.measurement.report import write_report

    good = _good_record()
    runs = tmp_path / "runs" / "x" / "y"
    runs.mkdir(parents=True)
    evil = dict(good, dataset="../../../../../" + str(tmp_path / "ESCAPED"))
    (runs / "metrics.json").write_text(json.dumps(evil))
    bad_run = dict(good, run="a/../../..")
    (tmp_path / "runs" / "x" / "metrics.json").write_text(json.dumps(bad_run))
    (tmp_path / "runs" / "ok").mkdir()
    (tmp_path / "runs" / "ok" / "metrics.json").write_text(json.dumps(_bound(tmp_path / "runs" / "ok", good)))
    out = tmp_path / "deep" / "out"
    files = write_report(tmp_path / "runs", out)
    err = capsys.readouterr().err
    assert "record skipped (unknown dataset" in err and "does not end in two safe folder names" in err
    assert not list(tmp_path.glob("ESCAPED*")) and not list(tmp_path.rglob("*ESCAPED*"))
    for f in files:
        assert out.resolve() in f.resolve().parents, f


def _bound(gan_folder, record: dict) -> dict:
    """``record`` bound to the weights a (fake) run folder and its VAE's record as theirs."""
    for folder, sha in ((gan_folder, "b" * 64), (gan_folder.parent, "a" * 64)):
        (folder / "run.json").write_text(json.dumps({"status": "finished", "weights_sha256": sha}))
    return dict(record, weights={"vae": "a" * 64, "lsr_gan": "b" * 64, "classifier": None})


def _good_record() -> dict:
    """A well-formed evaluation record, as `lsr evaluate` writes them."""
    stat = lambda m: {"mean": m, "sem": 0.1, "std": 1.0, "n": 100, "unit": ""}
    keys = ("mse_vae", "mse_lsr_gan", "variance_vae", "variance_lsr_gan", "absolute_vae", "absolute_lsr_gan",
            "relative_vae", "relative_lsr_gan", "sharpness_vae", "sharpness_lsr_gan", "classifier_raw_accuracy")
    return {"run": "shapes/vae-b1-e6-0123abcd/gan-l1-e2-4567ef01", "dataset": "shapes", "profile": "quick",
            "beta": 1.0, "lam": 1.0, "vae_epochs": 6, "gan_epochs": 2, "n_train": 20000, "n_test": 100,
            "values": {k: stat(float(i)) for i, k in enumerate(keys)} | {"n_test": 100}, "scores": {},
            "fid": {"available": False}, "collapse": {"collapsed": False, "diversity_ratio": 0.5, "threshold": 0.15},
            "provenance": {"command": "lsr evaluate X", "evaluated": "2026-11-26T00:00:00+00:00",
                           "environment": {"cuda_device": "cpu", "processor": "x86_64", "cpu_threads": 2}}}


@pytest.mark.parametrize("change,why", [
    (lambda r: {k: v for k, v in r.items() if k != "dataset"}, "missing dataset"),
    (lambda r: dict(r, beta="1"), "beta is not a finite number"),
    (lambda r: dict(r, values={"mse_vae": {"mean": "x"}}), "values is not a mapping"),
])
def test_report_skips_malformed_records_with_a_warning(tmp_path, capsys, change, why):
    from lsr_utils.measurement.report import write_report

    d = tmp_path / "runs" / "a" / "b"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(change(_good_record())))
    (tmp_path / "runs" / "a" / "metrics.json").write_text("{not json")
    with pytest.raises(LsrError, match="no evaluated runs"):
        write_report(tmp_path / "runs", tmp_path / "out")
    err = capsys.readouterr().err
    assert why in err and "not valid JSON" in err


def test_report_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["report", "--runs", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "x"


def test_sweep_values_never_name_paths_outside_out(tmp_path):
    pytest.importorskip("papermill")
    from lsr_utils.apps.notebook import sweep, value_file_name

    assert value_file_name("beta", "/../../../TRAV") == "beta=%2F..%2F..%2F..%2FTRAV"
    assert value_file_name("beta", "..") == "beta=%2E."
    assert value_file_name("beta", 0.5) == "beta=0.5"
    assert "/" not in value_file_name("beta", "a/b" * 100) and len(value_file_name("beta", "a/b" * 100)) < 100
    with pytest.raises(LsrError, match="not a Python identifier"):
        value_file_name("../x", 1)
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("beta = 1.0")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("x = beta")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    res = sweep(tmp_path / "nb.ipynb", "beta", ["/../../../TRAV", "a/b"], out=tmp_path / "deep" / "sw",
                progress=False)
    assert len(res["done"]) == 2
    made = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "nb.ipynb"]
    folder = (tmp_path / "deep" / "sw" / "nb").resolve()
    assert made and all(p.resolve().parent == folder for p in made), made


@pytest.mark.parametrize("target", ["missing.ipynb", "plain.txt"])
def test_sweep_refuses_a_missing_or_non_notebook(tmp_path, capsys, target):
    (tmp_path / "plain.txt").write_text("hello")
    code = main(["sweep", str(tmp_path / target), "--param", "beta", "--values", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and ("no such notebook" in err or "not a Jupyter notebook" in err)
    assert "Traceback" not in err


# --------------------------------------------------------------------------- runs that must not be silently wrong
SMOKE = ("--profile", "smoke", "--n-train", "64", "--no-progress")


def _train_vae_cli(capsys, out, *extra):
    code = main(["train-vae", *SMOKE, "--epochs", "1", "--out", str(out), *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_resume_a_vae_run_through_the_cli(tmp_path, capsys):
    from lsr_utils.storage.runs import RunDir

    class Crash(Exception):
        pass

    from conftest import run_folder

    from lsr_utils.data import load_data
    from lsr_utils.method.config import make_config
    from lsr_utils.training.train import train_vae

    cfg = make_config("smoke", n_train=64, vae_epochs=2).vae

    def crash(event, info):
        if event == "step" and info["step"] == 3:
            raise Crash()

    with pytest.raises(Crash):
        train_vae(cfg, load_data("shapes", n_train=64, n_test=16), out=tmp_path,
                  options=RunOptions(progress=False, checkpoint_every_steps=1, callbacks=[crash]))
    path = run_folder(cfg, tmp_path)
    assert RunDir(path).status == "running"
    code = main(["train-vae", "--resume", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "resuming" in err and RunDir(path).status == "finished"


def test_resume_refuses_a_different_profile(tmp_path, capsys):
    from lsr_utils.storage.runs import RunDir

    code = main(["train-vae", "--profile", "smoke", "--out", str(tmp_path), "--no-progress", "--epochs", "1",
                 "--n-train", "64"])
    assert code == 0
    path = next((tmp_path / "shapes").glob("vae-*"))
    (path / "weights.pt").rename(path / "checkpoint-was.pt")  # pretend it is unfinished: a checkpoint to resume
    import shutil

    shutil.copy(path / "checkpoint-was.pt", path / "checkpoint.pt")
    before = (path / "run.json").read_text()
    code = main(["train-vae", "--resume", str(path), "--profile", "quick", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "differ from that run's configuration" in err and "epochs" in err
    assert (path / "run.json").read_text() == before and RunDir(path).status == "running"


def test_non_finite_losses_stop_training_and_mark_the_run_failed(tmp_path, capsys):
    from lsr_utils.storage.runs import RunDir

    code, out, err = _train_vae_cli(capsys, tmp_path, "--beta", "1e300")
    assert code == 2
    assert "training stopped at step" in err and "is inf" in err or "is nan" in err
    assert "likely cause" in err and "beta=1e+300" in err and "Traceback" not in err
    path = next((tmp_path / "shapes").glob("vae-*"))
    assert RunDir(path).status == "failed" and not (path / "weights.pt").exists()
    # never reused: the same command says it failed and how to start over
    code, out, err = _train_vae_cli(capsys, tmp_path, "--beta", "1e300")
    assert code == 2 and "stopped earlier" in err and "--fresh" in err
    code = main(["train-gan", *SMOKE, "--lam", "1e300", "--epochs", "1", "--vae-epochs", "1", "--out",
                 str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "lambda=1e+300" in err and "training stopped at step" in err


def test_runs_record_what_actually_ran(tmp_path, capsys):
    """A profile that asks for more images than exist records the images used; n_train is part of the identity."""
    import numpy as np
    from PIL import Image

    from lsr_utils.storage.runs import RunDir

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 8)):
        for cls in ("a", "b"):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                    tmp_path / "imgs" / split / cls / f"{i}.png")
    code = main(["train-vae", "--dataset", "imagefolder", "--data-root", str(tmp_path / "imgs"), "--profile", "smoke",
                 "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    path = next((tmp_path / "runs" / "imagefolder").glob("vae-*"))
    kind, cfg = RunDir(path).read_config()
    assert cfg.n_train == 80 and cfg.data_id.endswith("|n=80")  # 256 asked for, 80 exist
    # the same options with other images: another run, never the first one reused
    import shutil

    shutil.copytree(tmp_path / "imgs", tmp_path / "imgs2")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "imgs2" / "train" / "a" / "0.png")
    code = main(["train-vae", "--dataset", "imagefolder", "--data-root", str(tmp_path / "imgs2"), "--profile",
                 "smoke", "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "reusing" not in err
    assert len(list((tmp_path / "runs" / "imagefolder").glob("vae-*"))) == 2


def test_a_second_process_is_told_who_trains_the_run(tmp_path, capsys):
    from conftest import run_folder

    from lsr_utils.method.config import make_config
    from lsr_utils.storage.runs import RunDir

    path = run_folder(make_config("smoke", n_train=64, vae_epochs=1).vae, tmp_path)
    with RunDir(path).lock():
        code, out, err = _train_vae_cli(capsys, tmp_path)
    assert code == 2 and "is being trained by process" in err and "--wait" in err
    assert not (path / "run.json").exists()  # the second process changed nothing
    code, out, err = _train_vae_cli(capsys, tmp_path, "--wait")
    assert code == 0


# --------------------------------------------------------------------------- faults
def test_a_full_disk_leaves_no_temporary_file_and_says_so(tmp_path, monkeypatch):
    import errno

    import lsr_utils.base.files as files
    from lsr_utils.base.errors import LsrError

    target = tmp_path / "checkpoint.pt"
    files.atomic_torch_save(target, {"lsr_version": "x", "a": torch.zeros(3)})
    real_save = torch.save

    def full(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(LsrError, match="disk is full") as e:
        files.atomic_torch_save(target, {"lsr_version": "x", "a": torch.ones(3)})
    assert "intact" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no .tmp file left
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.zeros(3))  # the old one is intact


def test_a_read_only_folder_is_one_message(tmp_path, monkeypatch, capsys):
    import errno

    import lsr_utils.base.files as files

    def read_only(tmp):
        raise OSError(errno.EROFS, "Read-only file system")

    with pytest.raises(LsrError, match="cannot write .* here .*read-only file system.*writable folder"):
        files.atomic_write(tmp_path / "x.json", read_only)
    assert not list(tmp_path.iterdir())


def test_evaluate_of_a_read_only_run_says_how(copy, capsys, monkeypatch):
    import os as _os

    real = _os.access
    monkeypatch.setattr(_os, "access", lambda p, mode: False if str(p) == str(copy["gan"].resolve()) else
                        real(p, mode))
    code = main(["evaluate", str(copy["gan"]), "--no-fid", "--no-progress", "--n-test", "100",
                 "--classifier", str(copy["clf"])])
    err = capsys.readouterr().err
    assert code == 2 and "read-only" in err and "--record FILE" in err
    code = main(["evaluate", str(copy["gan"]), "--no-fid", "--no-progress", "--n-test", "100",
                 "--classifier", str(copy["clf"]), "--record", str(copy["out"].parent / "elsewhere.json")])
    assert code == 0 and (copy["out"].parent / "elsewhere.json").is_file()


# --------------------------------------------------------------------------- damaged run folders
@pytest.mark.parametrize("file,content,needle", [
    ("config.json", "[1, 2]", "config.json: not a valid run configuration"),
    ("config.json", '{"kind": "gan"}', "config.json: not a valid run configuration"),
    ("config.json", '{"kind": "gan", "config": {"vae": {"beta": "x"}}}', "the saved configuration is invalid"),
    ("run.json", "{not json", "run.json is unreadable; the run folder is damaged"),
    ("run.json", '["finished"]', "not finished"),
    ("history.json", "[]", "history.json: not a valid training history"),
])
def test_damaged_run_folder_is_named(copy, capsys, file, content, needle):
    from lsr_utils.models.finished import load_run

    (copy["gan"] / file).write_text(content)
    with pytest.raises(LsrError) as e:
        load_run(copy["gan"])
    assert needle in str(e.value)


def test_checkpoint_without_models_is_a_damaged_folder(copy, capsys):
    torch.save({"lsr_version": "0.2.0", "kind": "gan", "epoch": 0}, copy["gan"] / "checkpoint.pt")
    (copy["gan"] / "weights.pt").unlink()
    before = (copy["gan"] / "run.json").read_text()
    code = main(["train-gan", "--resume", str(copy["gan"]), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint.pt: lacks" in err and "models" in err and "damaged" in err
    assert (copy["gan"] / "run.json").read_text() == before  # not rewritten from finished to running


def test_evaluate_a_relative_run_path_from_inside_the_runs_folder(copy, capsys, monkeypatch):
    monkeypatch.chdir(copy["out"] / "shapes")
    rel = copy["gan"].relative_to(copy["out"] / "shapes")
    code = main(["evaluate", str(rel), "--no-fid", "--no-progress", "--n-test", "100", "--classifier",
                 str(copy["clf"])])
    assert code == 0, capsys.readouterr().err


def test_evaluate_of_a_folder_that_is_no_run(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path), "--no-fid"])
    err = capsys.readouterr().err
    assert code == 2 and "not a run folder" in err


# --------------------------------------------------------------------------- bad data files
def test_corrupt_image_in_an_imagefolder_is_named(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / split / "a" / f"{i}.png")
    (tmp_path / "train" / "a" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code = main(["train-vae", "--dataset", "imagefolder", "--data-root", str(tmp_path), "--profile", "smoke",
                 "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.jpg: not a readable image" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("dataset,where", [("imagefolder", "."), ("cifar10", "cifar10-jpeg"), ("cifar10", ".")])
def test_random_bytes_zip_is_named(tmp_path, capsys, dataset, where):
    d = tmp_path / where
    d.mkdir(exist_ok=True)
    (d / "train.zip").write_bytes(os.urandom(2000))
    code = main(["train-vae", "--dataset", dataset, "--data-root", str(tmp_path), "--profile", "smoke", "--out",
                 str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "train.zip: not a readable zip file" in err and "Traceback" not in err


def test_random_gz_idx_files_are_named(tmp_path, capsys):
    d = tmp_path / "mnist"
    d.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (d / name).write_bytes(os.urandom(500))
    code = main(["train-vae", "--dataset", "mnist", "--data-root", str(tmp_path), "--profile", "smoke", "--out",
                 str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "-ubyte.gz: not a readable gzip file" in err and "Traceback" not in err


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for argv in (["train-vae", *SMOKE, "--out", str(tmp_path / "f")], ["demo", "--profile", "smoke", "--out",
                                                                        str(tmp_path / "f")],
                 ["sweep", str(tmp_path / "f"), "--param", "beta", "--values", "1", "--out", str(tmp_path / "f")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert ("is a file" in err or "not a Jupyter notebook" in err) and "Traceback" not in err
    assert (tmp_path / "f").read_text() == "x"


# --------------------------------------------------------------------------- real faults (run by hand: -m fault)
def _mount_tmpfs(where, size: str, read_only: bool = False):
    import shutil as _sh
    import subprocess as sp

    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    r = sp.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0 or _sh.which("umount") is None:
        pytest.fail(f"these fault tests mount a small tmpfs (needs root): {r.stderr.strip()}")
    return lambda: sp.run(["umount", "-l", str(where)], check=False)


@pytest.mark.fault
def test_a_really_full_disk(tmp_path, capsys):
    """A run folder on a 3 MB file system: the checkpoint cannot be written; nothing half-written stays."""
    disk = tmp_path / "small"
    umount = _mount_tmpfs(disk, "3m")
    try:
        code, out, err = _train_vae_cli(capsys, disk)
        assert code == 2 and "disk is full" in err and "Traceback" not in err
        assert not [p for p in disk.rglob("*") if ".tmp" in p.name], "a temporary file was left behind"
    finally:
        umount()


@pytest.mark.fault
def test_a_really_read_only_folder(tmp_path, capsys, finished):
    """Training into, and evaluating a run on, a read-only file system: one message each, nothing changed."""
    import shutil as _sh

    ro = tmp_path / "ro"
    umount = _mount_tmpfs(ro, "64m")
    try:
        _sh.copytree(finished["out"], ro / "runs")
        import subprocess as sp

        sp.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        code, out, err = _train_vae_cli(capsys, ro / "new-runs")
        assert code == 2 and "read-only file system" in err and "Traceback" not in err
        gan = ro / "runs" / finished["gan"].relative_to(finished["out"])
        clf = ro / "runs" / finished["clf"].relative_to(finished["out"])
        code = main(["evaluate", str(gan), "--no-fid", "--no-progress", "--n-test", "300", "--classifier", str(clf)])
        err = capsys.readouterr().err
        assert code == 2 and "read-only" in err and "--record FILE" in err
    finally:
        umount()


# ----------------------------------------------------------------------------- second round: one test per family
def test_a_received_folder_cannot_make_the_kit_write_or_read_through_a_link(copy, tmp_path, capsys):
    """Links and special files out of a run folder are refused by name, never followed: an unfinished run whose
    .lock links to a file outside it (the file stays intact), a metrics.json linking to /dev/zero or a FIFO
    (refused at once, no hang), a weights file that is a link."""
    from lsr_utils.measurement.report import write_report

    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    vae = copy["vae"]
    (vae / "run.json").write_text(json.dumps({"status": "running", "started": "2026-01-01T00:00:00"}))
    (vae / "weights.pt").rename(tmp_path / "w.pt")  # an unfinished run: the next train-vae takes its lock
    (vae / ".lock").unlink(missing_ok=True)
    os.symlink(outside, vae / ".lock")
    code = main(["train-vae", "--profile", "smoke", "--n-train", "64", "--epochs", "1", "--out", str(copy["out"]),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "symbolic link" in err and ".lock" in err and "Traceback" not in err
    assert outside.read_text() == "keep me"

    gan = copy["gan"]
    (gan / "metrics.json").unlink(missing_ok=True)
    os.symlink("/dev/zero", gan / "metrics.json")
    warnings = []
    with pytest.raises(LsrError, match="no evaluated runs"):  # the one record, refused by name: nothing to report
        write_report(copy["out"], tmp_path / "report", warn=warnings.append)
    assert any("metrics.json" in w and "symbolic link" in w for w in warnings), warnings
    (gan / "metrics.json").unlink()
    os.mkfifo(gan / "metrics.json")
    warnings.clear()
    with pytest.raises(LsrError, match="no evaluated runs"):  # returns at once: a FIFO is never opened blocking
        write_report(copy["out"], tmp_path / "report", warn=warnings.append)
    assert any("metrics.json" in w and "FIFO" in w for w in warnings), warnings


def test_a_celeba_partition_line_cannot_name_an_image_outside_the_dataset(tmp_path, capsys):
    base = tmp_path / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    (base / "list_eval_partition.txt").write_text("../../../etc/passwd 0\n000001.jpg 2\n")
    code = main(["train-vae", "--dataset", "celeba", "--data-root", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "../../../etc/passwd" in err and "Traceback" not in err


@pytest.mark.parametrize("body,needle", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    ('{"dataset": "shapes", "n": ' + "9" * 5000 + "}", "digits"),
    ('{"status": 3}', "status"),
])
def test_one_validated_reader_for_every_json(tmp_path, body, needle):
    """Depth, number and schema limits: a bad file is one message naming it, never a RecursionError or KeyError."""
    from lsr_utils.base.files import read_json
    from lsr_utils.storage.runs import RUN_SCHEMA

    f = tmp_path / "run.json"
    f.write_text(body)
    with pytest.raises(LsrError, match=needle) as e:
        read_json(f, "run record", RUN_SCHEMA)
    assert str(f) in str(e.value)


def test_bad_records_and_histories_are_named_and_skipped(copy, tmp_path, capsys):
    """A record missing fields or holding the wrong types is skipped by name in the report; a history whose loss is
    a string is a damaged run folder (one message), not a crash of the next command."""
    from lsr_utils.measurement.report import write_report

    kept = tmp_path / "out" / "records"  # records a report keeps (and reads back)
    kept.mkdir(parents=True)
    (kept / "a.json").write_text(json.dumps({"dataset": "shapes", "profile": "smoke", "beta": 1.0, "lam": 1.0,
                                             "run": "shapes/vae-b1-e1-0/gan-l1-e1-0", "values": 3.5}))
    (kept / "b.json").write_text("[" * 50_000 + "]" * 50_000)
    warnings = []
    with pytest.raises(LsrError, match="no evaluated runs"):  # both skipped, by name: nothing left to report
        write_report(tmp_path / "no-runs", tmp_path / "out", warn=warnings.append)
    assert any("a.json" in w and "values" in w for w in warnings), warnings
    assert any("b.json" in w and "nested deeper" in w for w in warnings), warnings
    h = json.loads((copy["vae"] / "history.json").read_text())
    h["epoch"]["loss"] = ["not a number"]
    (copy["vae"] / "history.json").write_text(json.dumps(h))
    code = main(["train-gan", "--profile", "smoke", "--n-train", "64", "--vae-epochs", "1", "--epochs", "1",
                 "--out", str(copy["out"]), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "history.json" in err and "Traceback" not in err


def test_numbers_are_bound_to_the_weights_they_measure(copy, tmp_path, capsys):
    """A folder whose weights were swapped for another run's is refused; a record with copied settings but other
    weights is never reused as 'the evaluation'; a checkpoint claiming an impossible epoch is refused."""
    vae = copy["vae"]
    w = torch.load(vae / "weights.pt", weights_only=True)
    w["encoder"] = {k: (v + 1 if v.is_floating_point() else v) for k, v in w["encoder"].items()}
    torch.save(w, vae / "weights.pt")  # another run's weights, same architecture
    code = main(["evaluate", str(copy["gan"]), "--no-fid", "--no-progress", "--classifier", str(copy["clf"])])
    err = capsys.readouterr().err
    assert code == 2 and "SHA-256" in err and "Traceback" not in err


def test_a_checkpoint_claiming_an_impossible_position_is_refused(tmp_path):
    from lsr_utils.data import load_data
    from lsr_utils.method.config import make_config
    from lsr_utils.training.train import run_path, train_vae

    data = load_data("shapes", n_train=64, n_test=32)
    cfg = make_config("smoke", n_train=64, vae_epochs=2).vae

    def crash(event, info):
        if event == "step" and info["step"] == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError):
        train_vae(cfg, data, out=tmp_path, options=RunOptions(progress=False, checkpoint_every_steps=1, callbacks=[crash]))
    ck_path = run_path(cfg, data, out=tmp_path) / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck["epoch"] = 999
    torch.save(ck, ck_path)
    with pytest.raises(LsrError, match="claims epoch 999"):
        train_vae(cfg, data, out=tmp_path, options=RunOptions(progress=False))


def test_sizes_from_outside_are_bounded_before_anything_is_allocated(copy, tmp_path, capsys):
    import zipfile

    import numpy as np

    for args, needle in ((["train-vae", "--n-train", "1000000000000"], "n_train"),
                         (["evaluate", str(copy["gan"]), "--samples", "100000"], "samples")):
        code = main(args + ["--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and "Traceback" not in err, err
    cfg_file = copy["vae"] / "config.json"  # a received config.json asking for a 20 GB network
    d = json.loads(cfg_file.read_text())
    d["config"]["latent_dim"] = 10_000_000
    cfg_file.write_text(json.dumps(d))
    code = main(["evaluate", str(copy["gan"]), "--no-fid", "--no-progress", "--classifier", str(copy["clf"])])
    err = capsys.readouterr().err
    assert code == 2 and "latent_dim" in err and "limit" in err and "Traceback" not in err
    # an .npz whose header claims 1e11 elements: refused from the header, before anything is allocated
    root = tmp_path / "imagenet64"
    root.mkdir()
    for name in ("train_data_batch_1.npz", "val_data.npz"):
        np.savez(root / name, data=np.zeros((2, 12288), np.uint8), labels=np.ones(2, np.int64))
        with zipfile.ZipFile(root / name) as z:
            members = {n: z.read(n) for n in z.namelist()}
        raw = members["data.npy"]
        members["data.npy"] = raw.replace(b"(2, 12288)", b"(100000000, 1000)")
        with zipfile.ZipFile(root / name, "w") as z:
            for n, b in members.items():
                z.writestr(n, b)
    code = main(["train-vae", "--dataset", "imagenet64", "--data-root", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "claims" in err and "refused before reading" in err and "Traceback" not in err, err


def test_sigterm_checkpoints_like_ctrl_c(tmp_path):
    """SIGTERM (timeout, docker, SLURM preemption) stops training at a checkpoint, with the resume command."""
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, LSR_PROGRESS="0", LSR_PROFILE="smoke")
    cmd = [sys.executable, "-m", "lsr_utils.apps.cli", "train-vae", "--vae-epochs" if False else "--epochs", "6",
           "--n-train", "512", "--out", str(tmp_path), "--no-progress"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob("shapes/vae-*/checkpoint.pt")):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "SIGTERM" in err and "Run the same command again to resume" in err, err
    assert list(tmp_path.glob("shapes/vae-*/checkpoint.pt")) and not list(tmp_path.glob("shapes/vae-*/weights.pt"))


def test_a_killed_write_leaves_temporaries_that_the_next_run_removes(copy):
    from lsr_utils.storage.runs import RunDir

    stale = copy["vae"] / ".checkpoint.pt.tmp12345"
    stale.write_bytes(b"half a checkpoint")
    with RunDir(copy["vae"]).lock():
        pass
    assert not stale.exists()


@pytest.mark.parametrize("args,needle", [
    (["selfcheck", "--steps", "0"], "at least 5"),
    (["selfcheck", "--steps", "-3"], "at least 5"),
    (["reproduce", "--budget", "nan", "--dry-run"], "budget"),
])
def test_no_vacuous_pass(args, needle, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_no_false_verdict_from_too_few_images_and_resume_with_fresh_is_refused(copy, capsys):
    before = (copy["gan"] / "metrics.json").read_bytes() if (copy["gan"] / "metrics.json").exists() else None
    code = main(["evaluate", str(copy["gan"]), "--n-test", "1", "--no-fid", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "at least 10" in err
    after = (copy["gan"] / "metrics.json").read_bytes() if (copy["gan"] / "metrics.json").exists() else None
    assert before == after  # nothing written over the existing record
    code = main(["train-vae", "--resume", str(copy["vae"]), "--fresh", "--no-progress"])
    assert code == 2 and "--fresh" in capsys.readouterr().err


def test_the_classifier_takes_its_classes_from_the_data(tmp_path):
    """An image folder of 12 classes trains a 12-way classifier (it used to fail with IndexError)."""
    from PIL import Image

    from lsr_utils.measurement.classifier import classifier_config, train_classifier

    for split, n in (("train", 4), ("test", 2)):
        for c in range(12):
            d = tmp_path / "imgs" / split / f"class{c:02d}"
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32), (20 * c, 10 * i, 0)).save(d / f"{i}.png")
    run = train_classifier(classifier_config("imagefolder", "smoke", batch_size=8, n_train=None), out=tmp_path / "runs", data_root=tmp_path / "imgs", options=RunOptions(progress=False))
    assert run.config.num_classes == 12
