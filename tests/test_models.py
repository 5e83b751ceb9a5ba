import pytest
import torch

from lsr_utils.errors import LsrError
from lsr_utils.models import Decoder, Discriminator, Encoder, count_parameters


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
