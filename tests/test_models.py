import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.method.nn import Decoder, Discriminator, Encoder, count_parameters


def test_reference_parameter_counts():
    # Reference implementation (docs/reference-implementation.md): 418,496 / 404,896 / 171,904.
    assert count_parameters(Encoder()) == 418_496
    assert count_parameters(Decoder()) == 404_896
    assert count_parameters(Discriminator()) == 171_904


def test_layout_without_reference_quirk_drops_unused_bn():
    # The reference up-block registers a shortcut BN it never uses: 2 * (128 + 64 + 32) parameters.
    assert count_parameters(Decoder(reference_layout=False)) == 404_896 - 448


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3), (32, 1)])
def test_shapes_for_each_geometry(size, channels):
    enc = Encoder(image_size=size, channels=channels, latent_dim=16)
    dec = Decoder(image_size=size, channels=channels, latent_dim=16)
    disc = Discriminator(image_size=size, channels=channels)
    x = torch.rand(3, channels, size, size) * 2 - 1
    mu, logvar = enc(x)
    assert mu.shape == logvar.shape == (3, 16)
    y = dec(mu)
    assert y.shape == x.shape
    assert y.abs().max() <= 1  # tanh output, model range
    assert disc(x).shape[:2] == (3, 3)


def test_cifar_discriminator_map_is_3x2x2():
    assert Discriminator()(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 2, 2)


@pytest.mark.parametrize("kw", [dict(image_size=48), dict(channels=2), dict(latent_dim=0)])
def test_bad_geometry_is_a_clear_error(kw):
    with pytest.raises(LsrError):
        Encoder(**kw)


def test_unused_shortcut_bn_gets_no_gradient():
    dec = Decoder()
    dec(torch.randn(4, 128)).sum().backward()
    assert dec.blocks[0].shortcut_bn.weight.grad is None
    assert dec.blocks[0].conv1.weight.grad is not None


@pytest.mark.parametrize("groups,bias", [(1, False), (2, True), (4, False)])
def test_fused_upsample_conv_is_upsample_then_conv(groups, bias):
    """``upsample_conv3x3`` computes the same map as interpolate + conv, values and gradients (float64)."""
    import torch.nn.functional as F

    from lsr_utils.method.nn import upsample_conv3x3

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 12, 3, padding=1, bias=bias, groups=groups).double()
    x = torch.randn(3, 8, 5, 7, dtype=torch.float64, requires_grad=True)
    want = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    got = upsample_conv3x3(x, conv)
    assert got.shape == want.shape == (3, 12, 10, 14)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(want)
    grads_want = torch.autograd.grad(want, (x, conv.weight), g)
    grads_got = torch.autograd.grad(got, (x, conv.weight), g)
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a kernel whose taps are permuted is a different map: the comparison can fail
    with torch.no_grad():
        conv.weight.copy_(conv.weight.flip(-1))
    assert not torch.allclose(upsample_conv3x3(x, conv), want)


def test_fused_decoder_equals_reference_decoder():
    from lsr_utils.method.nn import literal_upsampling

    torch.manual_seed(1)
    fused = Decoder().double()
    literal = literal_upsampling(Decoder().double())
    literal.load_state_dict(fused.state_dict())
    z = torch.randn(6, 128, dtype=torch.float64)
    torch.testing.assert_close(fused(z), literal(z), rtol=1e-10, atol=1e-12)
    assert all(not b.fused for b in literal.blocks) and all(b.fused for b in fused.blocks)


def test_fused_upsample_conv_rejects_other_convolutions():
    from lsr_utils.method.nn import upsample_conv3x3

    with pytest.raises(LsrError, match="3x3"):
        upsample_conv3x3(torch.zeros(1, 4, 4, 4), torch.nn.Conv2d(4, 4, 5, padding=2))


def _trained_looking_encoder():
    """An encoder whose BatchNorms hold non-trivial running statistics and affine parameters."""
    torch.manual_seed(3)
    enc = Encoder().double()
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.3)
    return enc.eval()


def test_folded_encoder_is_the_same_function():
    from lsr_utils.method.nn import fold_batchnorm

    enc = _trained_looking_encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    folded = fold_batchnorm(enc)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    for a, b in zip(folded(x), enc(x)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # the input gradient, which is what stage 2 needs from the frozen encoder
    ga = torch.autograd.grad(sum(t.square().sum() for t in folded(x)), x)[0]
    gb = torch.autograd.grad(sum(t.square().sum() for t in enc(x)), x)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-10)
    # the original is untouched
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    # negative control: the same comparison sees a different running mean
    with torch.no_grad():
        enc.features[0].bn1.running_mean.add_(0.01)
    assert not torch.allclose(folded(x)[0], enc(x)[0], rtol=1e-6)


def test_folding_refuses_a_training_mode_encoder():
    from lsr_utils.method.nn import fold_batchnorm

    with pytest.raises(LsrError, match="eval"):
        fold_batchnorm(Encoder().train())
