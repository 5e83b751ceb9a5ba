import numpy as np
import pytest
import torch

from lsr_utils import fid
from lsr_utils.errors import LsrError


class StandIn(fid.FeatureExtractor):
    """A fixed random projection of 8x8-pooled images: a stand-in for the Inception network."""

    name, dim = "stand-in-16", 16

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(3 * 8 * 8, 16, generator=g)

    def features(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ self.w


def test_frechet_distance_closed_form_diagonal():
    # diagonal Gaussians: d = |mu1 - mu2|^2 + sum (s1 - s2)^2 over standard deviations
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert np.isclose(fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)), expected)


def test_frechet_distance_rotation_invariant_and_zero_for_same():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    s = a @ a.T
    assert abs(fid.frechet_distance(np.zeros(6), s, np.zeros(6), s)) < 1e-8
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    s2 = np.diag(rng.uniform(0.5, 2, 6))
    d1 = fid.frechet_distance(np.zeros(6), s, np.ones(6), s2)
    d2 = fid.frechet_distance(np.zeros(6), q @ s @ q.T, q @ np.ones(6), q @ s2 @ q.T)
    assert np.isclose(d1, d2)


def test_stand_in_distance_orders_image_sets():
    g = torch.Generator().manual_seed(1)
    real = torch.rand(200, 3, 32, 32, generator=g)
    ext = StandIn()
    ref = fid.image_statistics(real, ext)
    same = fid.distance(torch.rand(200, 3, 32, 32, generator=g), ref, ext)
    shifted = fid.distance(torch.rand(200, 3, 32, 32, generator=g) * 0.5, ref, ext)
    assert 0 <= same < shifted
    grey = fid.distance(torch.rand(200, 1, 32, 32, generator=g), ref, ext)  # repeated to 3 channels
    assert np.isfinite(grey)


def test_too_few_images_is_refused_not_computed():
    with pytest.raises(LsrError, match="too few"):
        fid.image_statistics(torch.rand(10, 3, 32, 32), StandIn())


def test_wrong_range_images_refused():
    with pytest.raises(LsrError, match="model_to_unit"):
        StandIn()(torch.rand(4, 3, 32, 32) * 2 - 1)


def test_cached_statistics_reused(tmp_path):
    ext = StandIn()
    calls = []

    def images():
        calls.append(1)
        return torch.rand(64, 3, 32, 32)

    a = fid.cached_statistics("k", images, ext, cache=tmp_path)
    b = fid.cached_statistics("k", images, ext, cache=tmp_path)
    assert len(calls) == 1 and np.allclose(a.mu, b.mu) and a.n == 64


def test_missing_inception_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LSR_OFFLINE", "1")
    monkeypatch.delenv("LSR_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LsrError, match="pt_inception-2015-12-05-6726825d.pth") as e:
        fid.InceptionFID()
    assert "LSR_FID_WEIGHTS" in str(e.value)
    with pytest.raises(LsrError, match="does not exist"):
        fid.InceptionFID(weights=tmp_path / "nope.pth")


def test_local_weights_file_is_loaded(tmp_path, monkeypatch):
    """A weights file in pytorch-fid's layout is accepted from a path (here: random weights of the right shapes)."""
    from pytorch_fid import inception as pf

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = pf.FIDInceptionE_1(1280)
        net.Mixed_7c = pf.FIDInceptionE_2(2048)
    path = tmp_path / fid.FID_WEIGHTS_NAME
    torch.save(net.state_dict(), path)
    monkeypatch.setenv("LSR_FID_WEIGHTS", str(path))
    ext = fid.InceptionFID(batch_size=4)
    f = ext(torch.rand(3, 3, 32, 32))
    assert f.shape == (3, 2048) and ext.name.startswith("fid-inception-pool3-2048:")
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(LsrError, match="not the FID Inception weights"):
        fid.InceptionFID(weights=bad)
