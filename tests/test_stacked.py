"""Sweep batching: M members trained side by side as one wide network do what M separate runs do.

Step-level checks run in float64 (see tests/test_equivalence.py for why), the
end-to-end check in the kit's float32 with a tolerance.
"""
import copy

import numpy as np
import pytest
import torch

from lsr_utils.config import GANConfig, VAEConfig
from lsr_utils.errors import LsrError
from lsr_utils.nn import Decoder, Discriminator, Encoder
from lsr_utils.pixels import uint8_to_model
from lsr_utils.nn import members_of, stack_members, unstack_member
from lsr_utils.runtime import adam as _adam
from lsr_utils.steps import GANStep, VAEStep
from lsr_utils.train import load_run, train_lsr_gan, train_vae

StackedVAEStep, StackedGANStep = VAEStep, GANStep  # one step class serves M stacked members (M = 1: a plain run)
train_vae_sweep, train_lsr_gan_sweep = train_vae, train_lsr_gan  # a list of configurations is a sweep

D64 = torch.float64
CPU = torch.device("cpu")


def _batches(n_steps, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_steps * batch, 3, 32, 32), dtype=torch.uint8, generator=g)
    return [uint8_to_model(x[i * batch:(i + 1) * batch], D64).contiguous(memory_format=torch.channels_last)
            for i in range(n_steps)]


@pytest.mark.parametrize("net", [Encoder, Decoder, Discriminator])
def test_wide_network_is_its_members_side_by_side(net):
    torch.manual_seed(0)
    members = [net().to(D64) for _ in range(3)]
    for k, m in enumerate(members):  # distinct running statistics too
        for b in m.modules():
            if isinstance(b, torch.nn.modules.batchnorm._BatchNorm):
                b.running_mean.uniform_(-0.1, 0.1)
                b.running_var.uniform_(0.5, 1.5)
    wide = stack_members(members)
    x = torch.randn(4, 128, dtype=D64) if net is Decoder else torch.randn(4, 3, 32, 32, dtype=D64)
    for mode in ("train", "eval"):
        for m in (*members, wide):
            getattr(m, mode)()
        outs = [m(x) for m in members]
        w = wide(x.repeat(1, 3, *([1] * (x.dim() - 2))))
        if net is Encoder:
            for j in (0, 1):
                torch.testing.assert_close(members_of(w[j], 3), torch.stack([o[j] for o in outs]))
        else:
            torch.testing.assert_close(members_of(w, 3), torch.stack(outs))
    for i, m in enumerate(members):  # cut back: each member's own weights and statistics
        state = unstack_member(wide, m, i)
        for k, v in m.state_dict().items():
            torch.testing.assert_close(state[k], v)


def test_stack_refuses_mixed_architectures():
    with pytest.raises(LsrError, match="differ in architecture"):
        stack_members([Encoder(), Decoder()])


def _max_diff(a, b):
    return max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(a.parameters(), b.parameters()))


def _compare(separate, stacked, nets, wides, templates, batches):
    """Stacked step vs the separate steps: equal losses every step, equal weights at the end."""
    for x in batches:
        want = torch.cat([s(x) for s in separate])
        got = stacked(x)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-8, atol=1e-12)
    for i, own in enumerate(nets):
        for net, wide, template in zip(own, wides, templates):
            cut = copy.deepcopy(template)
            cut.load_state_dict(unstack_member(wide, template, i))
            assert _max_diff(net, cut) < 1e-6


def test_stacked_gan_step_equals_separate_runs():
    lams = (0.1, 1.0, 10.0)
    torch.manual_seed(1)
    enc = Encoder().to(D64).eval().requires_grad_(False)
    gen, disc = Decoder().to(D64), Discriminator().to(D64)
    cfgs = [GANConfig(vae=VAEConfig(dataset="cifar10"), lam=lam) for lam in lams]
    separate, nets = [], []
    for c in cfgs:
        g, d = copy.deepcopy(gen), copy.deepcopy(disc)
        separate.append(GANStep(c, enc, g, d, _adam(g.parameters(), c.lr, c.adam_betas, CPU),
                                _adam(d.parameters(), c.lr, c.adam_betas, CPU), torch.Generator().manual_seed(3), CPU))
        nets.append((g, d))
    gw, dw = stack_members([gen] * 3), stack_members([disc] * 3)
    stacked = StackedGANStep(cfgs, enc, gw, dw, _adam(gw.parameters(), 2e-4, (0.5, 0.999), CPU),
                             _adam(dw.parameters(), 2e-4, (0.5, 0.999), CPU), torch.Generator().manual_seed(3), CPU)
    _compare(separate, stacked, nets, (gw, dw), (gen, disc), _batches(4))
    assert _max_diff(nets[0][0], nets[2][0]) > 1e-4  # lambda mattered: the members did diverge


def test_stacked_vae_step_equals_separate_runs():
    betas = (0.5, 1.0, 4.0)
    torch.manual_seed(2)
    enc, dec = Encoder().to(D64), Decoder().to(D64)
    cfgs = [VAEConfig(dataset="cifar10", beta=b) for b in betas]
    separate, nets = [], []
    for c in cfgs:
        e, d = copy.deepcopy(enc), copy.deepcopy(dec)
        separate.append(VAEStep(c, e, d, _adam(list(e.parameters()) + list(d.parameters()), c.lr, c.adam_betas, CPU),
                                torch.Generator().manual_seed(4), CPU))
        nets.append((e, d))
    ew, dw = stack_members([enc] * 3), stack_members([dec] * 3)
    stacked = StackedVAEStep(cfgs, ew, dw, _adam(list(ew.parameters()) + list(dw.parameters()), 2e-4, (0.5, 0.999),
                                                 CPU), torch.Generator().manual_seed(4), CPU)
    _compare(separate, stacked, nets, (ew, dw), (enc, dec), _batches(4, seed=1))


def test_sweep_functions_write_the_runs_separate_training_would(tmp_path):
    """End to end, float32: same folders, same configurations, weights within float32 drift."""
    vcfg = VAEConfig(dataset="shapes", epochs=1, n_train=96, batch_size=32)
    kw = dict(device="cpu", progress=False, stack=True)
    vaes = train_vae_sweep([vcfg.replace(beta=b) for b in (1.0, 4.0)], out=tmp_path / "batched", **kw)
    alone = train_vae(vcfg.replace(beta=4.0), out=tmp_path / "alone", **kw)
    assert vaes[1].path.name == alone.path.name and vaes[1].config == alone.config
    assert _max_diff(vaes[1].encoder, alone.encoder) < 2e-3
    assert load_run(vaes[1].path).history["sweep"]["beta"] == [1.0, 4.0]

    gcfgs = [GANConfig(vae=vcfg, epochs=1, lam=lam) for lam in (0.5, 2.0, 8.0)]
    gans = train_lsr_gan_sweep(gcfgs, vae=vaes[0], out=tmp_path / "batched", **kw)
    one = train_lsr_gan(gcfgs[2], vae=train_vae(vcfg, out=tmp_path / "alone", **kw), out=tmp_path / "alone", **kw)
    assert gans[2].path.name == one.path.name
    assert _max_diff(gans[2].generator, one.generator) < 2e-3
    assert _max_diff(gans[2].discriminator, one.discriminator) < 2e-3
    assert not list(vaes[0].path.glob("sweep-*"))  # the sweep's own folder is cleaned up
    again = train_lsr_gan_sweep(gcfgs, vae=vaes[0], out=tmp_path / "batched", **kw)
    assert all(r.reused for r in again)
    with pytest.raises(LsrError, match="may differ only in lam"):
        train_lsr_gan_sweep([gcfgs[0], gcfgs[1].replace(epochs=2)], out=tmp_path / "batched", **kw)


def test_stacked_gans_over_different_vaes_equal_separate_runs():
    """A beta sweep's LSR-GANs, one per VAE, stacked with their encoders side by side, equal separate runs."""
    betas = (0.5, 4.0)
    torch.manual_seed(3)
    encs = []
    for _ in betas:  # two different encoders, with their own running statistics
        e = Encoder().to(D64)
        e.train()(torch.randn(16, 3, 32, 32, dtype=D64))
        encs.append(e.eval().requires_grad_(False))
    gens = [Decoder().to(D64) for _ in betas]
    disc = Discriminator().to(D64)
    cfgs = [GANConfig(vae=VAEConfig(dataset="cifar10", beta=b)) for b in betas]
    separate, nets = [], []
    for c, e, g0 in zip(cfgs, encs, gens):
        g, d = copy.deepcopy(g0), copy.deepcopy(disc)
        separate.append(GANStep(c, e, g, d, _adam(g.parameters(), c.lr, c.adam_betas, CPU),
                                _adam(d.parameters(), c.lr, c.adam_betas, CPU), torch.Generator().manual_seed(5), CPU))
        nets.append((g, d))
    gw, dw = stack_members(gens), stack_members([disc] * len(betas))
    stacked = GANStep(cfgs, encs, gw, dw, _adam(gw.parameters(), 2e-4, (0.5, 0.999), CPU),
                      _adam(dw.parameters(), 2e-4, (0.5, 0.999), CPU), torch.Generator().manual_seed(5), CPU)
    assert not stacked.shared and not any(p.requires_grad for p in stacked.encoder.parameters())
    _compare(separate, stacked, nets, (gw, dw), (gens[0], disc), _batches(3, seed=2))


def test_beta_sweep_gans_train_stacked_end_to_end(tmp_path):
    vcfg = VAEConfig(dataset="shapes", epochs=1, n_train=96, batch_size=32)
    kw = dict(device="cpu", progress=False, stack=True)
    vaes = train_vae([vcfg.replace(beta=b) for b in (1.0, 4.0)], out=tmp_path, **kw)
    gcfgs = [GANConfig(vae=v.config, epochs=1) for v in vaes]
    gans = train_lsr_gan(gcfgs, vae=vaes, out=tmp_path, **kw)
    assert [g.path.parent for g in gans] == [v.path for v in vaes]  # each in its own VAE's folder
    alone = train_lsr_gan(gcfgs[1], vae=vaes[1], out=tmp_path / "alone", **kw)
    assert _max_diff(gans[1].generator, alone.generator) < 2e-3
    assert load_run(gans[0].path).history["sweep"]["beta"] == [1.0, 4.0]
    assert not list((tmp_path / "shapes").glob("sweep-*"))
