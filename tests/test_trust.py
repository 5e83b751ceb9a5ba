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

from lsr_utils.cli import main
from lsr_utils.errors import LsrError


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
    from lsr_utils.classifier import classifier_config, train_classifier
    from lsr_utils.config import profile_configs
    from lsr_utils.data import load_data
    from lsr_utils.train import train_lsr_gan

    out = tmp_path_factory.mktemp("trusted") / "runs"
    data = load_data("shapes", n_train=64, n_test=300)
    cfg = profile_configs("smoke", n_train=64, vae_epochs=1, gan_epochs=1)
    gan = train_lsr_gan(cfg, data, out=out, progress=False)
    clf = train_classifier(classifier_config("shapes", "smoke", n_train=64, width=8), data, out=out, progress=False)
    return {"out": out, "cfg": cfg, "gan": gan.path, "vae": gan.path.parent, "clf": clf.path}


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(finished["out"], out)
    rel = lambda p: out / p.relative_to(finished["out"])  # noqa: E731
    return {"out": out, "cfg": finished["cfg"], "gan": rel(finished["gan"]), "vae": rel(finished["vae"]),
            "clf": rel(finished["clf"]), "marker": tmp_path / "PWNED"}


def _refused(err: str, marker):
    assert not marker.exists(), "code ran from a weights file"
    assert "refused to load" in err and "could run code" in err and "Traceback" not in err


@pytest.mark.parametrize("which", ["vae", "gan"])
def test_payload_in_weights_never_runs_on_reuse_or_load(copy, capsys, which):
    from lsr_utils.train import load_run

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
    from lsr_utils.train import load_run

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
    from lsr_utils.runs import torch_load

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
    from lsr_utils.widgets import LatentExplorer

    poison(copy["gan"] / "weights.pt", copy["marker"])
    explorer = LatentExplorer(copy["out"])
    assert not copy["marker"].exists()
    assert "refused to load" in explorer.message.value


def test_report_never_writes_outside_out(tmp_path, capsys):
    from lsr_utils.report import write_report

    good = _good_record()
    runs = tmp_path / "runs" / "x" / "y"
    runs.mkdir(parents=True)
    evil = dict(good, dataset="../../../../../" + str(tmp_path / "ESCAPED"))
    (runs / "metrics.json").write_text(json.dumps(evil))
    bad_run = dict(good, run="a/../../..")
    (tmp_path / "runs" / "x" / "metrics.json").write_text(json.dumps(bad_run))
    (tmp_path / "runs" / "ok").mkdir()
    (tmp_path / "runs" / "ok" / "metrics.json").write_text(json.dumps(good))
    out = tmp_path / "deep" / "out"
    files = write_report(tmp_path / "runs", out)
    err = capsys.readouterr().err
    assert "record skipped (unknown dataset" in err and "does not end in two safe folder names" in err
    assert not list(tmp_path.glob("ESCAPED*")) and not list(tmp_path.rglob("*ESCAPED*"))
    for f in files:
        assert out.resolve() in f.resolve().parents, f


def _good_record() -> dict:
    from pathlib import Path

    records = sorted((Path(__file__).parents[1] / "results" / "records").glob("shapes_*.json"))
    return json.loads(records[0].read_text())


@pytest.mark.parametrize("change,why", [
    (lambda r: {k: v for k, v in r.items() if k != "dataset"}, "missing dataset"),
    (lambda r: dict(r, beta="1"), "beta is not a finite number"),
    (lambda r: dict(r, values={"mse_vae": {"mean": "x"}}), "values is not a mapping"),
])
def test_report_skips_malformed_records_with_a_warning(tmp_path, capsys, change, why):
    from lsr_utils.report import write_report

    d = tmp_path / "runs" / "a" / "b"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(change(_good_record())))
    (tmp_path / "runs" / "a" / "metrics.json").write_text("{not json")
    with pytest.raises(LsrError, match="no evaluated runs"):
        write_report(tmp_path / "runs", tmp_path / "out")
    err = capsys.readouterr().err
    assert why in err and "not readable JSON" in err


def test_report_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["report", "--runs", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "x"


def test_sweep_values_never_name_paths_outside_out(tmp_path):
    pytest.importorskip("papermill")
    from lsr_utils.notebook import sweep, value_file_name

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
