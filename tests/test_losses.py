import math

import torch
import torch.nn.functional as F

from lsr_utils.method import losses


def test_kl_is_zero_for_standard_normal_posterior():
    mu, logvar = torch.zeros(5, 7), torch.zeros(5, 7)
    assert losses.kl_divergence(mu, logvar).item() == 0.0


def test_kl_hand_value():
    # KL(N(1, e^1) || N(0,1)) per dim = 0.5 * (e + 1 - 1 - 1) = 0.5 * (e - 1)
    mu, logvar = torch.ones(2, 3), torch.ones(2, 3)
    expected = 6 * 0.5 * (math.e - 1.0)
    assert math.isclose(losses.kl_divergence(mu, logvar).item(), expected, rel_tol=1e-6)


def test_log_mse_reconstruction_hand_value():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([0.5, -0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0]).view(2, 1, 2, 2)
    sse = 0.25 + 0.25 + 1.0 + 4.0
    assert math.isclose(losses.log_mse_reconstruction(x_hat, x).item(), 8 / 2 * math.log(sse), rel_tol=1e-6)
    assert math.isclose(losses.sse_reconstruction(x_hat, x).item(), sse, rel_tol=1e-6)


def test_log_mse_gradient_equals_gaussian_with_variance_mse():
    # Appendix A: d/dx_hat (N/2) log SSE = (x_hat - x) / sigma^2 with sigma^2 = MSE.
    x = torch.randn(3, 3, 4, 4)
    x_hat = torch.randn(3, 3, 4, 4, requires_grad=True)
    losses.log_mse_reconstruction(x_hat, x).backward()
    mse = (x_hat - x).pow(2).mean().detach()
    assert torch.allclose(x_hat.grad, (x_hat.detach() - x) / mse, rtol=1e-4, atol=1e-6)


def test_vae_loss_parts_and_beta():
    x, x_hat = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    mu, logvar = torch.randn(2, 8), torch.randn(2, 8)
    p1 = losses.vae_loss(x_hat, x, mu, logvar, beta=1.0)
    p20 = losses.vae_loss(x_hat, x, mu, logvar, beta=20.0)
    assert torch.allclose(p20.total, p20.recon + 20 * p20.kl)
    assert torch.allclose(p1.recon, p20.recon) and torch.allclose(p1.kl, p20.kl)
    sse = losses.vae_loss(x_hat, x, mu, logvar, recon_loss="sse")
    assert torch.allclose(sse.recon, (x_hat - x).pow(2).sum())


def test_gaussian_nll_matches_torch_distributions():
    z, mu, logvar = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6)
    ref = -torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z)
    assert torch.allclose(losses.gaussian_nll(z, mu, logvar), ref, atol=1e-5)


def test_lsr_reductions_differ_by_latent_dim():
    z, mu, logvar = torch.randn(4, 128), torch.randn(4, 128), torch.randn(4, 128)
    mean = losses.lsr_loss(z, mu, logvar, reduction="mean")
    total = losses.lsr_loss(z, mu, logvar, reduction="sum")
    assert torch.allclose(total, 128 * mean, rtol=1e-5)


def test_lsr_hand_value_at_mode():
    # z == mu, logvar = 0: -log N(0|0,1) = log sqrt(2 pi) per dim
    z = torch.zeros(2, 4)
    assert math.isclose(losses.lsr_loss(z, z, z).item(), math.log(math.sqrt(2 * math.pi)), rel_tol=1e-6)


def test_gan_losses_equal_reference_sigmoid_bce():
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    d = losses.discriminator_loss(real, fake)
    ref = F.binary_cross_entropy(torch.sigmoid(fake), torch.zeros_like(fake)) + \
        F.binary_cross_entropy(torch.sigmoid(real), torch.ones_like(real))
    assert torch.allclose(d.total, ref, atol=1e-5)
    z, mu, lv = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 8)
    g = losses.generator_loss(fake, z, mu, lv, lam=2.5)
    ref_g = F.binary_cross_entropy(torch.sigmoid(fake), torch.ones_like(fake)) + 2.5 * losses.lsr_loss(z, mu, lv)
    assert torch.allclose(g.total, ref_g, atol=1e-5)
    # D(x) = 0.5 everywhere: each BCE term is log 2
    half = losses.discriminator_loss(torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 2, 2))
    assert math.isclose(half.total.item(), 2 * math.log(2), rel_tol=1e-6)
