"""Headless tests of the latent explorer: set widget values, check which images change."""

import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.base.pixels import model_to_unit
from lsr_utils.method.config import make_config
from lsr_utils.training.loop import RunOptions
from lsr_utils.training.train import train_lsr_gan, train_vae

W = pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from lsr_utils.data import load_data

    out = tmp_path_factory.mktemp("runs")
    data = load_data("shapes", n_train=128, n_test=40)
    for lam in (1.0, 5.0):
        cfg = make_config("smoke", n_train=128, vae_epochs=1, gan_epochs=1, lam=lam)
        vae = train_vae(cfg.vae, data, out=out, options=RunOptions(progress=False))
        train_lsr_gan(cfg, data, vae=vae, out=out, options=RunOptions(progress=False))
    return out, data


def panels(ex):
    names = ["img_input", "img_vae", "img_gan", "img_cur_vae", "img_cur_gan", "img_interp_vae", "img_interp_gan"]
    out = {n: getattr(ex, n).value for n in names}
    out["samples"] = tuple(w.value for w in ex.img_samples)
    return out


def changed(a, b):
    return {k for k in a if a[k] != b[k]}


@pytest.fixture
def explorer(runs):
    from lsr_utils.apps.widgets import LatentExplorer

    out, data = runs
    return LatentExplorer(out, data, n_sliders=4, n_samples=3)


def test_explorer_lists_runs_and_shows_images(explorer):
    assert len(explorer.choices) == 2 and "lambda=1" in explorer.choices[0].label
    p = panels(explorer)
    assert all(v[:4] == b"\x89PNG" for k, v in p.items() if k != "samples")
    assert explorer.message.value == ""
    assert len(explorer.sliders) == 4


def test_slider_changes_exactly_the_edited_panels(explorer):
    before = panels(explorer)
    explorer.sliders[0].value = explorer.sliders[0].value + 2.0
    assert changed(before, panels(explorer)) == {"img_cur_vae", "img_cur_gan"}


def test_sliders_are_ranked_by_kl(explorer):
    kl = explorer.model.kl
    dims = explorer.model.slider_dims()
    assert all(kl[dims[i]] >= kl[dims[i + 1]] for i in range(len(dims) - 1))
    assert float(kl[dims[0]]) == float(kl.max())


def test_new_image_changes_input_panels(explorer):
    before = panels(explorer)
    explorer.index.value = 5
    diff = changed(before, panels(explorer))
    assert {"img_input", "img_vae", "img_gan", "samples", "img_cur_vae", "img_cur_gan"} <= diff
    assert "img_interp_vae" not in diff  # interpolation endpoints did not change


def test_interpolation_endpoints_equal_the_inputs_renderings(explorer):
    from lsr_utils.apps.widgets import png_bytes

    m = explorer.model
    explorer.end_a.value, explorer.end_b.value = 3, 7
    for t, idx in ((0.0, 3), (1.0, 7)):
        explorer.t.value = t
        m.select(idx)
        vae, gan = m.reconstructions()
        assert explorer.img_interp_vae.value == png_bytes(vae, explorer.scale)
        assert explorer.img_interp_gan.value == png_bytes(gan, explorer.scale)


def test_random_z_and_reset(explorer):
    before = panels(explorer)
    explorer.random_z.click()
    assert changed(before, panels(explorer)) == {"img_cur_vae", "img_cur_gan"}
    explorer.reset.click()
    assert panels(explorer)["img_cur_vae"] == before["img_cur_vae"]


def test_run_selector_compares_the_same_image_across_runs(explorer):
    explorer.index.value = 4
    a = panels(explorer)
    explorer.run_select.value = 1
    b = panels(explorer)
    assert explorer.model.index == 4 and a["img_input"] == b["img_input"]
    assert a["img_gan"] != b["img_gan"]  # a different lambda renders differently


def test_bad_runs_give_a_message_not_a_traceback(runs, tmp_path):
    from lsr_utils.apps.widgets import LatentExplorer

    out, data = runs
    good = sorted(out.rglob("gan-*"))[0]
    broken = tmp_path / "gan-broken"
    broken.mkdir()
    (broken / "config.json").write_text((good / "config.json").read_text())
    ex = LatentExplorer([broken], data)
    assert "has not finished" in ex.message.value and "Cannot show this" in ex.message.value
    from lsr_utils.data import ImageData

    mnist_like = ImageData("shapes", torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long),
                           torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ("a",))
    ex2 = LatentExplorer([good], mnist_like)
    assert "3x32x32 images but the test images are 1x28x28" in ex2.message.value
    ex3 = LatentExplorer(tmp_path / "nothing-here", data)
    assert "no finished LSR-GAN runs" in ex3.message.value


def test_model_refuses_a_vae_run(runs):
    from lsr_utils.apps.widgets import ExplorerModel
    from lsr_utils.models.finished import load_run

    out, data = runs
    vae_dir = sorted(out.rglob("vae-*"))[0]
    with pytest.raises(LsrError, match="not a VAE run"):
        ExplorerModel(load_run(vae_dir), data.test_x)


def test_the_explorer_renders_codes_of_images_with_render_and_prior_samples_with_generate(runs):
    """With code statistics (GANConfig.code_stats) G draws a real image's code, its posterior samples, the edited
    code and interpolations with GANRun.render, and a random z ~ N(0, I) (and its edits) with GANRun.generate."""
    import copy

    from lsr_utils.apps.widgets import ExplorerModel
    from lsr_utils.models.finished import load_run

    out, data = runs
    run = load_run(next(out.glob("shapes/vae-*/gan-*")))
    run.code_generator = copy.deepcopy(run.generator)
    with torch.no_grad():
        run.code_generator.to_image.weight.mul_(-1.0)  # renders visibly otherwise
    m = ExplorerModel(run, data.test_x, data.test_y, data.classes, n_sliders=4, n_samples=2)
    g_code = run.render(m.mu[None]).cpu()
    assert not torch.equal(g_code, run.generate(m.mu[None]).cpu())
    assert torch.allclose(m.reconstructions()[1], model_to_unit(g_code))
    assert torch.allclose(m.current()[1], model_to_unit(run.render(m.z[None]).cpu()))
    m.random_latent()
    assert torch.allclose(m.current()[1], model_to_unit(run.generate(m.z[None]).cpu()))
    m.set_latent(m.slider_dims()[0], 1.0)
    assert torch.allclose(m.current()[1], model_to_unit(run.generate(m.z[None]).cpu()))
    m.reset_latent()
    assert torch.allclose(m.current()[1], model_to_unit(run.render(m.z[None]).cpu()))
    assert torch.allclose(m.interpolate(0.0)[1], model_to_unit(run.render(m.mu_a[None]).cpu()), atol=1e-6)
