"""Any VAE's latent rendered by LSR-GAN: pythae models and plain modules, frozen, evaluated like the kit's own."""
import json

import pytest
import torch
from torch import nn

from lsr_utils.apps.cli import main
from lsr_utils.base.errors import LsrError
from lsr_utils.measurement.evaluate import EvalSettings, evaluate_run
from lsr_utils.training.loop import RunOptions

pythae = pytest.importorskip("pythae", reason="pythae is an optional extra: pip install -e '.[pythae]'")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from lsr_utils.data import load_data

    return load_data("shapes", n_train=64, n_test=300)


@pytest.fixture(scope="module")
def pythae_vae(tmp_path_factory, tiny):
    """A tiny pythae VAE (default networks), trained a few steps on shapes, saved the way pythae saves it."""
    from pythae.models import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=(3, 32, 32), latent_dim=8))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = tiny.train_x.float() / 255
    for i in range(5):
        loss = model({"data": x[i * 8:(i + 1) * 8]}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder = tmp_path_factory.mktemp("pythae") / "final_model"
    model.save(str(folder))
    return model.eval(), folder


def test_the_adapter_gives_pythaes_own_encoder_output(pythae_vae, tiny, tmp_path):
    from lsr_utils.models.external import from_pythae

    model, folder = pythae_vae
    vae = from_pythae(folder, out=tmp_path, data=tiny)  # loaded from the folder, weights only
    x = tiny.test_x[:5].float() / 255
    with torch.no_grad():
        want = model.encoder(x)
        mu, logvar = vae.encode(x * 2 - 1)  # the kit speaks [-1, 1]; pythae's images are [0, 1]
    torch.testing.assert_close(mu, want["embedding"])
    torch.testing.assert_close(logvar, want["log_covariance"])
    assert vae.config.latent_dim == 8 and vae.config.source == "pythae:VAE" and vae.path.name.startswith("ext-")


def test_a_pythae_vae_is_rendered_and_evaluated_through_the_commands(pythae_vae, tiny, tmp_path, capsys):
    _, folder = pythae_vae
    out = tmp_path / "runs"
    code = main(["train-gan", "--encoder", f"pythae:{folder}", "--profile", "smoke", "--n-train", "64",
                 "--out", str(out), "--no-progress", "--generator", "vae-decoder"])
    assert code == 0, capsys.readouterr().err
    run = next(out.glob("shapes/ext-*/gan-*"))
    code = main(["train-classifier", "--profile", "smoke", "--out", str(out), "--no-progress"])
    assert code == 0
    clf = next(out.glob("shapes/classifier-*"))  # (the run matches no profile: without it, the quick one's is trained)
    code = main(["evaluate", str(run), "--n-test", "100", "--no-fid", "--no-progress", "--classifier", str(clf)])
    err = capsys.readouterr()
    assert code == 0, err.err
    rec = json.loads((run / "metrics.json").read_text())
    for key in ("mse_vae", "mse_lsr_gan", "sharpness_vae", "sharpness_lsr_gan", "variance_vae", "variance_lsr_gan",
                "absolute_vae", "absolute_lsr_gan"):
        assert key in rec["values"], key
    assert rec["vae_source"] == "pythae:VAE" and rec["generator"] == "vae-decoder" and "collapse" in rec


def test_a_pickled_pythae_folder_is_refused_without_the_flag(pythae_vae, tmp_path, capsys):
    """A folder with encoder.pkl is never unpickled unless the user says so; a hostile pickle does not run."""
    import pickle

    _, folder = pythae_vae
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    for f in ("model_config.json", "model.pt"):
        (hostile / f).write_bytes((folder / f).read_bytes())
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (hostile / "encoder.pkl").write_bytes(pickle.dumps(Payload()))
    code = main(["train-gan", "--encoder", f"pythae:{hostile}", "--profile", "smoke", "--out", str(tmp_path / "r"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "encoder.pkl" in err and "--trust-pickles" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_a_plain_module_encoder_takes_the_same_path(tiny, tmp_path):
    from lsr_utils.measurement.classifier import classifier_config, train_classifier
    from lsr_utils.measurement.evaluate import evaluate
    from lsr_utils.models.external import from_module
    from lsr_utils.training.any_vae import render_latent

    class Enc(nn.Module):  # a user's own encoder: [-1, 1] images -> (mu, logvar)
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 32), nn.ReLU(), nn.Linear(32, 12))

        def forward(self, x):
            mu, logvar = self.net(x).chunk(2, dim=1)
            return mu, logvar

    dec = nn.Sequential(nn.Linear(6, 3 * 32 * 32), nn.Tanh())
    torch.manual_seed(1)
    vae = from_module(Enc(), dec, out=tmp_path, data=tiny)
    assert vae.config.latent_dim == 6
    run = render_latent(vae, tiny, profile="smoke", out=tmp_path, progress=False)
    assert run.config.generator == "paper" and run.config.init == "scratch"  # the paper's G, sized to 6 dimensions
    clf = train_classifier(classifier_config("shapes", "smoke", n_train=64, width=8), tiny, out=tmp_path, options=RunOptions(progress=False))
    rec = evaluate(run, tiny, EvalSettings(n_variance=16, classifier=clf))
    assert rec["values"]["absolute_lsr_gan"]["n"] == 300
    with pytest.raises(LsrError, match="module given in Python"):
        evaluate_run(run.path, EvalSettings(n_test=300), progress=False)  # the folder cannot rebuild user code


def test_an_encoder_without_a_variance_is_refused_with_the_reason(tiny, tmp_path):
    from lsr_utils.models.external import from_module

    ae = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4))  # an autoencoder's encoder: a code, no variance
    with pytest.raises(LsrError, match="eq. 4") as e:
        from_module(ae, out=tmp_path, data=tiny)
    assert "fixed_logvar" in str(e.value)
    vae = from_module(ae, out=tmp_path, data=tiny, fixed_logvar=-2.0)  # stated: accepted
    mu, logvar = vae.encode(torch.zeros(2, 3, 32, 32))
    assert torch.equal(logvar, torch.full_like(mu, -2.0))
