import math

import numpy as np
import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.measurement.metrics import (
    Stat,
    accuracy,
    mse_per_pixel,
    sample_variance,
    sharpness,
    sharpness_per_image,
    sum_squared_error,
)


def test_mse_hand_value_and_unit():
    a = torch.zeros(2, 3, 2, 2)
    b = torch.full((2, 3, 2, 2), 0.5)
    s = sum_squared_error(a, b)
    assert math.isclose(s.mean, 12 * 0.25) and s.n == 2 and s.sem == 0.0
    assert math.isclose(mse_per_pixel(a, b).mean, 0.25)


def test_stat_standard_error():
    s = Stat.of(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert math.isclose(s.mean, 2.5) and math.isclose(s.sem, np.std([1, 2, 3, 4], ddof=1) / 2)


def test_metrics_refuse_wrong_range_and_shape():
    with pytest.raises(LsrError, match=r"model_to_unit"):
        sum_squared_error(torch.full((1, 3, 4, 4), -0.5), torch.zeros(1, 3, 4, 4))
    with pytest.raises(LsrError, match="uint8"):
        sharpness(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(LsrError, match=r"\(N, C, H, W\)"):
        sharpness(torch.zeros(3, 4, 4))
    with pytest.raises(LsrError, match="channels"):
        sharpness(torch.zeros(1, 4, 4, 3))
    with pytest.raises(LsrError, match="same shape"):
        sum_squared_error(torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 4, 4))


def test_sharpness_constant_is_zero_and_edges_are_sharp():
    assert sharpness(torch.full((2, 3, 8, 8), 0.4)).mean == 0.0
    edge = torch.full((1, 1, 8, 8), 0.2)
    edge[..., 4:] = 0.8
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(edge, (1, 1, 1, 1), mode="replicate"), 3, 1)
    assert sharpness_per_image(edge) > sharpness_per_image(blurred) > 0
    # scale-free on [0, 1]: halving brightness keeps the value
    assert torch.allclose(sharpness_per_image(edge), sharpness_per_image(edge * 0.5))


def test_sample_variance_zero_when_renderer_ignores_noise():
    mu, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
    s = sample_variance(lambda z: torch.full((len(z), 3, 4, 4), 0.3), mu, logvar, k=5)
    assert s.mean == 0.0
    s2 = sample_variance(lambda z: torch.sigmoid(z[:, :1, None, None].expand(-1, 3, 4, 4)), mu, logvar, k=50)
    assert s2.mean > 0


def test_sample_variance_does_not_depend_on_the_render_batch():
    """The noise is drawn per block of inputs, so rendering in smaller pieces (faster on a CPU) gives the same value."""
    mu, logvar = torch.randn(40, 8), torch.randn(40, 8) * 0.3
    render = lambda z: torch.sigmoid(z[:, :3, None, None].expand(-1, 3, 4, 4))
    whole = sample_variance(render, mu, logvar, k=5, generator=torch.Generator().manual_seed(0), batch_size=16,
                            render_batch=80)
    split = sample_variance(render, mu, logvar, k=5, generator=torch.Generator().manual_seed(0), batch_size=16,
                            render_batch=7)
    assert split.n == 40 and math.isclose(whole.mean, split.mean, rel_tol=1e-6)


def test_accuracy():
    assert accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])).mean == 0.75


@pytest.mark.shared_data
def test_sharpness_sanity_values_on_real_cifar10(shared_data):
    """docs/metrics.md: 1,000 CIFAR-10 test images (the `bird` folder, the first in test.zip):
    raw 0.278 (sd 0.160); blurred by a Gaussian of sigma 0.6 px 0.172; sigma 1.0 0.088."""
    from PIL import Image, ImageFilter

    from lsr_utils.data import load_data

    d = load_data("cifar10", root=shared_data)
    birds = d.test_x[d.test_y == d.classes.index("bird")]
    assert len(birds) == 1000
    s = sharpness(birds.float() / 255)
    assert abs(s.mean - 0.278) < 0.002 and abs(s.std - 0.160) < 0.002

    def blur(sigma):
        out = np.stack([np.asarray(Image.fromarray(a.permute(1, 2, 0).numpy()).filter(ImageFilter.GaussianBlur(sigma)))
                        for a in birds]).transpose(0, 3, 1, 2)
        return torch.from_numpy(out).float() / 255

    assert abs(sharpness(blur(0.6)).mean - 0.172) < 0.002
    assert abs(sharpness(blur(1.0)).mean - 0.088) < 0.002


def test_latent_spread_against_the_prior():
    """Codes drawn from the prior have covariance eigenvalues near 1; codes spread 3x wider along a few
    directions (a short-trained VAE's) show those directions at about 9."""
    from lsr_utils.measurement.metrics import latent_spread

    g = torch.Generator().manual_seed(0)
    prior = torch.randn(20000, 16, generator=g)
    s = latent_spread(prior, torch.zeros(20000, 16))
    assert all(0.9 < v < 1.1 for v in s["top_eigenvalues"]) and s["prior_eigenvalue"] == 1.0
    assert math.isclose(s["mean_posterior_variance"], 1.0)
    wide = prior.clone()
    basis = torch.linalg.qr(torch.randn(16, 16, generator=g))[0]
    wide = (wide * torch.tensor([3.0, 3.0] + [1.0] * 14)) @ basis.T  # two rotated directions of std 3
    s = latent_spread(wide, torch.full((20000, 16), math.log(0.1)))
    assert 8.0 < s["top_eigenvalues"][1] < 10.0 and s["top_eigenvalues"][2] < 1.2
    assert math.isclose(s["largest_std_ratio"], math.sqrt(s["top_eigenvalues"][0]), rel_tol=1e-3)
    assert math.isclose(s["mean_posterior_variance"], 0.1, rel_tol=1e-6)
    with pytest.raises(LsrError, match="at least 2"):
        latent_spread(torch.zeros(1, 4), torch.zeros(1, 4))


def test_object_hue_reads_the_generated_objects_colour_and_a_hue_shift():
    from lsr_utils.data.shapes import generate_shapes
    from lsr_utils.measurement.metrics import HUE_TOLERANCE, flat_object_masks, hue_degrees, hue_errors, hue_kept

    s = generate_shapes(64, seed=3, split="test")
    clean = torch.from_numpy(s.clean).float() / 255
    textured = torch.from_numpy(s.images).float() / 255
    m = flat_object_masks(clean)
    assert m.flatten(1).sum(1).min() > 50                              # every object found
    inside = (clean * m[:, None]).flatten(2).sum(2) / m.flatten(1).sum(1)[:, None]
    e = (hue_degrees(inside) - torch.from_numpy(s.factors["hue"]).float() * 360).abs()
    assert torch.minimum(e, 360 - e).max() < 2                         # the mask holds the object, not the background
    assert hue_errors(textured, clean).median() < 5                    # the texture keeps the hue
    assert hue_kept(textured, clean).mean == 100
    rotated = textured[:, [2, 0, 1]]                                   # R->G, G->B, B->R: every hue turns 120 degrees
    assert (hue_errors(rotated, clean) - 120).abs().median() < 5
    assert hue_kept(rotated, clean).mean == 0 and HUE_TOLERANCE == 30
    with pytest.raises(LsrError, match="RGB"):
        flat_object_masks(clean[:, :1])
