import json

import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.measurement.classifier import ClassifierConfig, classifier_config, train_classifier
from lsr_utils.measurement.evaluate import EvalSettings, collapse_check, evaluate_run
from lsr_utils.measurement.report import write_report
from lsr_utils.method.config import evaluation_sizes, make_config
from lsr_utils.training.loop import RunOptions
from lsr_utils.training.train import train_lsr_gan, train_vae


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lsr_utils.data import load_data

    out = tmp_path_factory.mktemp("runs")
    data = load_data("shapes", n_train=256, n_test=300)
    cfg = make_config("smoke", n_train=256, vae_epochs=1, gan_epochs=2)
    vae = train_vae(cfg.vae, data, out=out, options=RunOptions(progress=False))
    gan = train_lsr_gan(cfg, data, vae=vae, out=out, options=RunOptions(progress=False, snapshot_epochs=(1, 2)))
    clf = train_classifier(classifier_config("shapes", "smoke", n_train=256, width=8), data, out=out, options=RunOptions(progress=False))
    return out, gan, clf


def test_classifier_learns_shapes_and_is_cached(tmp_path):
    from lsr_utils.data import load_data

    data = load_data("shapes", n_train=2000, n_test=300)
    cfg = ClassifierConfig(dataset="shapes", n_train=2000, num_classes=4, width=16, epochs=4, batch_size=64, lr=0.05)
    run = train_classifier(cfg, data, out=tmp_path, options=RunOptions(progress=False))
    assert run.metrics["test_accuracy"] > 0.5  # chance is 0.25
    again = train_classifier(cfg, data, out=tmp_path, options=RunOptions(progress=False))
    assert again.metrics == run.metrics
    with pytest.raises(LsrError, match="takes 3x32x32"):
        run.predict(torch.rand(2, 1, 28, 28))


def test_evaluate_run_writes_all_metrics(trained):
    out, gan, clf = trained
    rec = evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=4, n_variance=64), progress=False, command="test")
    saved = json.loads((gan.path / "metrics.json").read_text())
    assert saved["values"].keys() == rec["values"].keys()
    v = rec["values"]
    for key in ("mse_vae", "mse_lsr_gan", "variance_vae", "variance_lsr_gan", "absolute_vae", "absolute_lsr_gan",
                "relative_vae", "relative_lsr_gan", "sharpness_vae", "sharpness_lsr_gan"):
        assert v[key]["n"] > 0 and v[key]["sem"] >= 0, key
    assert 0 <= v["absolute_vae"]["mean"] <= 100
    assert rec["profile"] == "custom" and rec["n_test"] == 300
    assert rec["scores"]["kit_cfd_test_vae"] >= 0 and rec["fid"] == {"available": False}
    assert rec["provenance"]["command"] == "test"
    # same settings, weights unchanged: the record is reused, not measured again
    again = evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=4, n_variance=64), progress=False, command="other")
    assert again["provenance"] == rec["provenance"]
    # other settings, or reuse=False: measured again
    fresh = evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=3, n_variance=64), progress=False, command="k3")
    assert fresh["provenance"]["command"] == "k3"
    forced = evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=3, n_variance=64), progress=False, command="forced", reuse=False)
    assert forced["provenance"]["command"] == "forced"


def test_the_sample_variance_is_measured_over_the_profiles_number_of_inputs(trained, tmp_path):
    out, gan, clf = trained
    assert [evaluation_sizes(p, "shapes")[1] for p in ("smoke", "quick", "paper", "custom")] == [32, 250, 1000, 1000]
    rec = evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=3), progress=False, record=tmp_path / "metrics.json")
    # a custom run (this one) takes up to 1,000 inputs, here all 300; the settings say which default was applied,
    # so a record made under another default is not reused
    assert rec["settings"]["n_variance"] == 1000 and rec["values"]["variance_n"] == 300
    assert rec["values"]["variance_vae"]["n"] == 300


def test_evaluate_refuses_other_dataset_classifier_and_unfinished_runs(trained, tmp_path):
    out, gan, clf = trained
    from dataclasses import replace

    other = replace(clf, config=clf.config.replace(dataset="mnist"))
    with pytest.raises(LsrError, match="trained on 'mnist'"):
        evaluate_run(gan.path, EvalSettings(classifier=other, use_fid=False, n_test=300), progress=False)
    unfinished = tmp_path / "gan-x"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps({"kind": "gan", "config": {}}))
    with pytest.raises(LsrError, match="has not finished"):
        evaluate_run(unfinished, EvalSettings(classifier=clf, use_fid=False))
    with pytest.raises(LsrError, match="a VAE run"):
        evaluate_run(gan.path.parent, EvalSettings(classifier=clf, use_fid=False))


def test_collapse_check():
    real = torch.rand(100, 3, 8, 8)
    assert not collapse_check(torch.rand(100, 3, 8, 8), real)["collapsed"]
    assert collapse_check(torch.full((100, 3, 8, 8), 0.5) + 0.001 * torch.rand(100, 3, 8, 8), real)["collapsed"]
    assert collapse_check(torch.full((100, 3, 8, 8), float("nan")), real)["collapsed"]


def test_report_layout_and_provenance(trained, tmp_path):
    out, gan, clf = trained
    evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=4, n_variance=64), progress=False, command="lsr evaluate X")
    files = write_report(out, tmp_path / "res", command="lsr report")
    names = {f.name for f in files}
    assert {"report.md", "table1_shapes_custom.csv", "table2_shapes_custom.csv", "section_shapes_custom.csv"} <= names
    md = (tmp_path / "res" / "report.md").read_text()
    assert "Table 1" in md and "beta=0.01" in md and "`lsr evaluate X`" in md
    assert "(paper:" not in md  # the paper measured CIFAR-10: a shapes table shows the kit's values alone
    # the same record as a CIFAR-10 one gets the paper's values beside it
    rec = json.loads((gan.path / "metrics.json").read_text())
    cifar = write_report(None, tmp_path / "cifar", records=[dict(rec, dataset="cifar10")], keep=False)
    md_c = next(f for f in cifar if f.name == "report.md").read_text()
    assert "(paper: model collapse)" in md_c and "(paper: 55.9 ± 0.3)" in md_c and "paper (CIFAR-10)" in md_c
    # the records kept beside the report stand in for run folders that are gone (runs/ is not committed)
    assert len(list((tmp_path / "res" / "records").glob("*.json"))) == 1
    write_report(tmp_path / "no_runs", tmp_path / "res", command="lsr report")
    assert "`lsr evaluate X`" in (tmp_path / "res" / "report.md").read_text()
    # a later evaluation of the same run replaces the kept one; still one record per run
    evaluate_run(gan.path, EvalSettings(classifier=clf, use_fid=False, n_test=300, k=4), progress=False, command="lsr evaluate Y", reuse=False)
    write_report(out, tmp_path / "res", command="lsr report")
    md = (tmp_path / "res" / "report.md").read_text()
    assert "`lsr evaluate Y`" in md and "`lsr evaluate X`" not in md
    assert len(list((tmp_path / "res" / "records").glob("*.json"))) == 1
    with pytest.raises(LsrError, match="no evaluated runs"):
        write_report(tmp_path / "empty", tmp_path / "r2")


def test_snapshots_give_a_convergence_record_and_figure(trained, tmp_path, capsys):
    """``lsr evaluate RUN --snapshots``: each kept epoch measured, the figure drawn, its numbers beside it."""
    import shutil

    from lsr_utils.apps.cli import main

    out, gan, clf = trained
    figure = tmp_path / "figs" / "convergence_shapes"
    code = main(["evaluate", str(gan.path), "--snapshots", "--figure", str(figure), "--classifier", str(clf.path),
                 "--n-test", "64", "--no-progress"])
    assert code == 0
    conv = json.loads((gan.path / "convergence.json").read_text())
    assert conv["epochs"] == [1, 2] and [r["gan_epochs_done"] for r in conv["records"]] == [1, 2]
    assert conv["n_test"] == 64 and not conv["run"].startswith("/")
    # the generators differ between the kept epochs, so their measurements do; the VAE's do not
    assert len({r["values"]["mse_lsr_gan"]["mean"] for r in conv["records"]}) == 2
    assert len({r["values"]["mse_vae"]["mean"] for r in conv["records"]}) == 1
    # the last kept epoch is the finished run, measured as the run itself is: its moving average (ema) rendering
    # codes with the statistics gathered over training codes (code_stats), both on in the smoke recipe
    from lsr_utils.data import load_data
    from lsr_utils.measurement.evaluate import EvalSettings, evaluate
    from lsr_utils.models.finished import load_gan_run

    assert gan.config.ema and gan.config.code_stats
    data = load_data("shapes", n_train=2, n_test=64, seed=gan.config.vae.data_seed)
    whole = evaluate(load_gan_run(gan.path), data, EvalSettings(classifier=clf), command="test")
    for name in ("mse_lsr_gan", "absolute_lsr_gan", "sharpness_lsr_gan"):
        assert conv["records"][-1]["values"][name]["mean"] == pytest.approx(whole["values"][name]["mean"]), name
    assert json.loads(figure.with_suffix(".json").read_text()) == conv
    assert figure.with_suffix(".png").stat().st_size > 0 and figure.with_suffix(".pdf").stat().st_size > 0
    assert "epoch    2:" in capsys.readouterr().out
    # a run without snapshots: one clear message, exit 2, nothing written
    copy = tmp_path / "copy" / gan.path.parent.name
    shutil.copytree(gan.path.parent, copy)
    plain = copy / gan.path.name
    shutil.rmtree(plain / "snapshots")
    (plain / "convergence.json").unlink()
    assert main(["evaluate", str(plain), "--snapshots", "--classifier", str(clf.path), "--no-progress"]) == 2
    assert "--snapshot-epochs" in capsys.readouterr().err
    assert not (plain / "convergence.json").exists()


def test_tables_show_the_reference_seed_where_a_point_has_several():
    """The seed-spread runs (seeds 14, 15) evaluated after seed 13 must not take its place in the tables."""
    from lsr_utils.measurement.report import build_tables, merge_records

    def rec(seed, mse, when, run):
        r = {"dataset": "shapes", "profile": "quick", "beta": 1.0, "lam": 1.0, "run": f"shapes/vae-b1/{run}",
             "n_test": 100, "values": {"mse_vae": {"mean": mse, "sem": 0.1, "n": 100}},
             "provenance": {"evaluated": when}}
        return r if seed is None else dict(r, seed=seed)

    recs = merge_records([rec(13, 23.6, "2026-01-01T10", "gan-a"), rec(14, 24.0, "2026-01-01T11", "gan-b"),
                          rec(15, 24.4, "2026-01-01T12", "gan-c")])
    t = build_tables(recs)[("shapes", "quick")]
    row = dict((r[0], r[1:]) for r in t["table1"][1])["Mean Square Error (VAE)"]
    assert any(c.startswith("23.6") for c in row) and not any(c.startswith("24.") for c in row)
    # of two copies of one evaluation (the run folder's and the one kept in results/), the one naming its seed
    merged = merge_records([rec(13, 23.6, "2026-01-01T10", "gan-a"), rec(None, 23.6, "2026-01-01T10", "gan-a")])
    assert len(merged) == 1 and merged[0]["seed"] == 13
    # a record whose seed is not an integer is refused, by name
    from lsr_utils.measurement.report import record_problem
    assert "seed" in record_problem(rec("13", 23.6, "x", "gan-a"))


def _benchmark(name: str, *args: str):
    """Run ``python -m benchmarks.<name> ARGS`` from the project's root, as its docstring says to."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args], capture_output=True, text=True,
                          timeout=600, cwd=root, env=dict(os.environ, PYTHONPATH=str(root)))


def test_gan_trajectory_benchmark_retrains_stage_2_exactly(trained):
    """benchmarks/gan_trajectory.py claims to train stage 2 as train_lsr_gan does: at the run's own step count its
    generator must equal the run's, and at step 0 the generator is the VAE's decoder (same classification)."""
    _, gan, clf = trained
    res = _benchmark("gan_trajectory", str(gan.path), "--every", "8", "--n-test", "64", "--classifier", str(clf.path))
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    steps = [r["step"] for r in out["trajectory"]]
    assert steps == [0, 8, 16]  # 256 images at batch 32, 2 epochs
    assert out["max_weight_difference_to_run"] == 0.0
    assert out["trajectory"][0]["lsr_gan_accuracy"] == out["vae_accuracy"]
    assert out["trajectory"][0]["sharpness_ratio"] == 1.0
    # the round trip at step 0 is the VAE decoder's: E(D(mu(x))) against mu(x), recomputed here
    from lsr_utils.base.pixels import uint8_to_model
    from lsr_utils.data import load_data

    data = load_data("shapes", n_train=2, n_test=64, seed=gan.config.vae.data_seed)
    with torch.no_grad():
        mu = gan.vae.encode(uint8_to_model(data.test_x))[0]
        m = gan.vae.encode(gan.vae.decoder.eval()(mu))[0]
    assert out["trajectory"][0]["round_trip_real"]["squared_error"] == pytest.approx(
        float((m - mu).pow(2).mean() / mu.var(0).mean()), abs=1e-3)
    assert out["trajectory"][-1]["round_trip_real"] != out["trajectory"][0]["round_trip_real"]


def test_latent_coverage_benchmark_confusion_agrees_with_its_accuracy(trained):
    """benchmarks/latent_coverage.py's confusion table is of the renderings it scores: its diagonal is the eval-mode
    accuracy, its rows are the test images of each class; the background probe reports levels in [0, 1]."""
    _, gan, clf = trained
    res = _benchmark("latent_coverage", str(gan.path), "--n-test", "64", "--classifier", str(clf.path))
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    conf = out["confusion_lsr_gan"]
    n = out["n_test"]
    assert sum(map(sum, conf.values())) == n
    right = sum(row[int(c)] for c, row in conf.items())
    acc = out["accuracy"]["lsr-gan G(mu(x)), eval mode (the kit's and the paper's evaluation)"]
    assert abs(100 * right / n - acc) < 0.06
    assert any(k.startswith("lsr-gan G(mu(x)), pixels below 0.25 set to 0") for k in out["accuracy"])
    assert all(v is None or 0.0 <= v <= 1.0 for v in out["dark_input_level"].values())
    assert "what the classifier calls G(mu(x))" in res.stdout
    # recomputed here: the table and the background level are of G(mu(x)), not of the VAE's D(mu(x))
    from lsr_utils.base.pixels import model_to_unit, uint8_to_model, uint8_to_unit
    from lsr_utils.data import load_data

    data = load_data("shapes", n_train=2, n_test=64, seed=gan.config.vae.data_seed)
    with torch.no_grad():
        unit = model_to_unit(gan.generator.eval()(gan.vae.encode(uint8_to_model(data.test_x))[0]))
    pred = clf.predict(unit)
    assert conf == {str(c): torch.bincount(pred[data.test_y == c], minlength=4).tolist() for c in range(4)}
    dark = (uint8_to_unit(data.test_x) < 0.25).all(1, keepdim=True).expand_as(unit)
    if dark.any():
        assert out["dark_input_level"]["lsr_gan"] == pytest.approx(float(unit[dark].mean()), abs=1e-3)
    # the round trip of real codes through each decoder, recomputed: E(net(mu(x))) against mu(x), eq. 4's term
    from lsr_utils.method.losses import lsr_loss

    trip = out["round_trip"]
    assert set(trip) == {"prior z, VAE E(D(z))", "prior z, LSR-GAN E(G(z))", "real mu(x), VAE E(D(mu(x)))",
                         "real mu(x), LSR-GAN E(G(mu(x)))"}
    with torch.no_grad():
        mu = gan.vae.encode(uint8_to_model(data.test_x))[0]
        for name, net in (("real mu(x), VAE E(D(mu(x)))", gan.vae.decoder.eval()),
                          ("real mu(x), LSR-GAN E(G(mu(x)))", gan.generator.eval())):
            m, lv = gan.vae.encode(net(mu))
            assert trip[name]["lsr_term"] == pytest.approx(float(lsr_loss(mu, m, lv)), abs=1e-3)
            assert trip[name]["squared_error"] == pytest.approx(
                float((m - mu).pow(2).mean() / mu.var(0).mean()), abs=1e-3)
            assert trip[name]["mean_logvar"] == pytest.approx(float(lv.mean()), abs=1e-3)


def test_classifier_spread_benchmark_reads_the_runs_renderings_with_each_classifier(trained, tmp_path):
    """benchmarks/classifier_spread.py: each classifier reads the run's G(mu(x)) and D(mu(x)) (eval mode) as
    recomputed here, with a stand-in classifier whose answers differ between the two (a trained one reads both
    of this tiny run as one class); the range is the minimum and maximum over classifiers; the command line labels
    classifiers without the machine's paths and trains the seeds it is asked for where it is told."""
    from benchmarks.classifier_spread import readings, renderings
    from lsr_utils.base.pixels import model_to_unit, uint8_to_model
    from lsr_utils.data import load_data
    from lsr_utils.measurement.metrics import accuracy

    _, gan, clf = trained
    name = "/".join(gan.path.parts[-3:])
    data = load_data("shapes", n_train=2, n_test=64, seed=gan.config.vae.data_seed)

    class ByLevel:  # a stand-in: the class follows the image's mean level in thousandths, shifted by ``k``
        def __init__(self, k):
            self.k = k

        def predict(self, images):
            return ((images.mean((1, 2, 3)) * 1000).long() + self.k) % 4

    images, names = renderings([gan], data.test_x, torch.device("cpu"))
    rows, summary = readings([(f"k{k}", ByLevel(k)) for k in range(4)], images, data.test_y, names)
    with torch.no_grad():
        mu = gan.vae.encode(uint8_to_model(data.test_x))[0]
        # the run's renderings of codes: with the statistics gathered over training codes (code_stats)
        g, d = model_to_unit(gan.render(mu)), model_to_unit(gan.vae.decoder.eval()(mu))
    differ = []
    for row, k in zip(rows, range(4)):
        want_g = round(accuracy(ByLevel(k).predict(g), data.test_y).mean * 100, 1)
        want_d = round(accuracy(ByLevel(k).predict(d), data.test_y).mean * 100, 1)
        assert (row["lsr_gan"][name], row["vae"][name]) == (want_g, want_d)
        differ.append(want_g != want_d)
    assert any(differ)  # the stand-ins tell the two renderings apart, so the check above can fail
    values = [r["lsr_gan"][name] for r in rows]
    assert summary["range"][name] == [min(values), max(values)] and summary["classifiers"] == 4

    res = _benchmark("classifier_spread", str(gan.path), "--classifier", str(clf.path), "--seeds", "5",
                     "--epochs", "1", "--n-test", "64", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(line) for line in res.stdout.strip().splitlines() if line.startswith("{")]
    assert [r["classifier"] for r in lines[:-1]] == [f"given 1: {clf.path.name}", "seed 5, 1 epochs"]
    assert not any(str(tmp_path) in json.dumps(x) or str(clf.path.parent) in json.dumps(x) for x in lines)
    assert (tmp_path / "shapes").is_dir() and lines[-1]["classifiers"] == 2


def test_panel_classification_is_the_mean_of_the_classifiers_readings():
    from lsr_utils.apps.demo import checked_values
    from lsr_utils.measurement.evaluate import panel_classification

    def reading(raw, vae, gan):
        return {"classifier_raw_accuracy": {"mean": raw}, "absolute_vae": {"mean": vae},
                "absolute_lsr_gan": {"mean": gan}, "relative_vae": {"mean": vae}, "relative_lsr_gan": {"mean": gan}}

    p = panel_classification([("a", reading(100, 99, 90)), ("b", reading(100, 97, 70)), ("c", reading(99, 98, 80))])
    assert p["classifiers"] == ["a", "b", "c"]
    g = p["absolute_lsr_gan"]
    assert g["readings"] == [90, 70, 80] and g["mean"] == 80 and g["min"] == 70 and g["max"] == 90
    assert abs(g["sd"] - 10.0) < 1e-9 and abs(g["sem"] - 10 / 3 ** 0.5) < 1e-9
    rec = {"values": {**reading(100, 99, 90), "sharpness_vae": {"mean": 0.1}}, "classifier_panel": p}
    v = checked_values(rec)  # the demo's checks read the panel's mean, the other values as they are
    assert v["absolute_lsr_gan"]["mean"] == 80 and v["absolute_vae"]["mean"] == 98 and v["sharpness_vae"]["mean"] == 0.1
    assert checked_values({"values": reading(100, 99, 90)})["absolute_lsr_gan"]["mean"] == 90  # no panel: one reading


def test_prior_mismatch_draws_from_the_codes_gaussian_and_counts_unanimous_names():
    """benchmarks/prior_mismatch.py: z' has the codes' mean and covariance (not the prior's), z'' their mean and
    each dimension's variance only; agreement counts the
    images every classifier names alike."""
    from benchmarks.prior_mismatch import agreement, diagonal_fit, gaussian_fit

    g = torch.Generator().manual_seed(0)
    codes = torch.randn(4000, 3, generator=g) @ torch.tensor([[3.0, 0, 0], [1.0, 0.5, 0], [0, 0, 0.1]]) + 2
    z = gaussian_fit(codes, torch.randn(20000, 3, generator=g))
    assert torch.allclose(z.mean(0), codes.mean(0), atol=0.1)
    assert torch.allclose(torch.cov(z.T), torch.cov(codes.T), rtol=0.05, atol=0.02)
    # z'': the same mean and each dimension's variance, but no covariance between dimensions
    zd = diagonal_fit(codes, torch.randn(20000, 3, generator=g))
    assert torch.allclose(zd.mean(0), codes.mean(0), atol=0.1)
    assert torch.allclose(zd.var(0), codes.var(0), rtol=0.05)
    assert torch.cov(codes.T)[0, 1] > 0.4 and abs(float(torch.cov(zd.T)[0, 1])) < 0.1
    assert agreement(torch.tensor([[0, 1, 2, 3], [0, 1, 0, 3], [0, 2, 2, 3]])) == 50.0


def test_beta_warmdown_falls_linearly_to_the_configured_beta_and_refuses_a_folder_with_a_vae(tmp_path, monkeypatch):
    """benchmarks/beta_warmdown.py: beta starts at --beta-from, reaches the configuration's at --steps and stays; the
    schedule is not in a run's folder name, so a runs folder already holding a VAE run is refused before anything
    trains or is copied."""
    from benchmarks.beta_warmdown import beta_at, main

    assert beta_at(0, 1.0, 4.0, 500) == 4.0 and beta_at(250, 1.0, 4.0, 500) == 2.5
    assert beta_at(500, 1.0, 4.0, 500) == 1.0 and beta_at(10_000, 1.0, 4.0, 500) == 1.0
    assert beta_at(0, 1.0, 4.0, 0) == 1.0  # no steps: no schedule
    (tmp_path / "runs" / "shapes" / "vae-b1-e3-0").mkdir(parents=True)
    (tmp_path / "panel" / "shapes" / "classifier-w16-e4-0").mkdir(parents=True)
    monkeypatch.setattr("sys.argv", ["beta_warmdown", str(tmp_path / "runs"), "--panel", str(tmp_path / "panel"),
                                     "--beta-from", "4", "--steps", "500"])
    with pytest.raises(SystemExit, match="holds a VAE run already"):
        main()
    assert not (tmp_path / "runs" / "shapes" / "classifier-w16-e4-0").exists()


def test_standing_statistics_average_every_batch_and_leave_the_generator_as_it_was():
    """benchmarks/standing_stats.py: the copy's BatchNorm statistics are the plain average of the drawn batches'
    statistics (not a moving average that forgets the first), in eval mode; the given generator keeps its own."""
    from benchmarks.standing_stats import standing

    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    before = g[1].running_mean.clone()
    batches = [torch.randn(8, 3) * (1 + b) + b for b in range(5)]
    s = standing(g, 5, lambda b: batches[b])
    with torch.no_grad():
        h = [g[0](x) for x in batches]
    assert torch.allclose(s[1].running_mean, torch.stack([x.mean(0) for x in h]).mean(0), atol=1e-5)
    assert torch.allclose(s[1].running_var, torch.stack([x.var(0) for x in h]).mean(0), atol=1e-4)
    assert not s.training and torch.equal(g[1].running_mean, before) and s[1].num_batches_tracked == 5
    # first_only: the first BatchNorm re-estimated the same way, the later ones keep their statistics
    g2 = torch.nn.Sequential(g[0], g[1], torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    g2[3].running_mean.fill_(0.5)
    s2 = standing(g2, 5, lambda b: batches[b], first_only=True)
    assert torch.allclose(s2[1].running_mean, s[1].running_mean, atol=1e-6)
    assert torch.equal(s2[3].running_mean, g2[3].running_mean) and int(s2[3].num_batches_tracked) == 0
