"""Sweep batching: M members trained side by side as one wide network do what M separate runs do.

Step-level checks run in float64 (see tests/test_equivalence.py for why), the
end-to-end check in the kit's float32 with a tolerance.
"""

import numpy as np
import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.base.pixels import uint8_to_model
from lsr_utils.data import load_data
from lsr_utils.method.config import GANConfig, VAEConfig
from lsr_utils.method.nn import Decoder, Discriminator, Encoder
from lsr_utils.method.stage import Build, build_stage
from lsr_utils.models.finished import load_run
from lsr_utils.speed.stacked import build_stacked_stage, members_of, stack_members, unstack_member
from lsr_utils.training.loop import RunOptions
from lsr_utils.training.sweep import train_sweep
from lsr_utils.training.train import train_lsr_gan, train_vae

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
    for m in members:  # distinct running statistics too
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


def _stage(cfg, noise_seed, **kw):
    """One run's stage, float64."""
    stage = build_stage(cfg, CPU, total_steps=100, how=Build(dtype=D64), **kw)
    stage.noise.manual_seed(noise_seed)
    return stage


def _stacked(cfgs, noise_seed, **kw):
    """The members' stacked stage, float64."""
    stage = build_stacked_stage(cfgs, CPU, total_steps=100, how=Build(dtype=D64), **kw)
    stage.noise.manual_seed(noise_seed)
    return stage


def _compare(separate, stacked, batches):
    """The stacked stage vs the separate stages: equal losses every step, equal weights at the end."""
    for i, x in enumerate(batches):
        want = torch.cat([s.step(x, i) for s in separate])
        got = stacked.step(x, i)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-8, atol=1e-12)
    for i, single in enumerate(separate):
        cut = stacked.member_weights(i)
        for name, net in single.models.items():
            for k, v in net.state_dict().items():
                if v.is_floating_point():
                    assert float((cut[name][k] - v).abs().max()) < 1e-6, (i, name, k)


def test_stacked_gan_step_equals_separate_runs():
    torch.manual_seed(1)
    enc, dec = Encoder().to(D64).eval(), Decoder().to(D64)
    cfgs = [GANConfig(vae=VAEConfig(dataset="cifar10"), lam=lam) for lam in (0.1, 1.0, 10.0)]
    separate = [_stage(c, 3, encoder=enc, decoder=dec) for c in cfgs]
    stacked = _stacked(cfgs, 3, encoders=[enc], decoders=[dec])
    assert stacked.m == 3 and stacked.kind == "gan-sweep"
    _compare(separate, stacked, _batches(4))
    assert _max_diff(separate[0].models["generator"], separate[2].models["generator"]) > 1e-4  # lambda mattered


def test_stacked_vae_step_equals_separate_runs():
    cfgs = [VAEConfig(dataset="cifar10", beta=b) for b in (0.5, 1.0, 4.0)]
    _compare([_stage(c, 4) for c in cfgs], _stacked(cfgs, 4), _batches(4, seed=1))


def test_stacked_recipe_equals_separate_runs():
    """The quick recipe's parts (warm-up and cosine schedule, discriminator warm-up, moving average of G) stack too."""
    torch.manual_seed(1)
    enc, dec = Encoder().to(D64).eval(), Decoder().to(D64)
    base = GANConfig(vae=VAEConfig(dataset="cifar10"), lr_warmup=2, lr_decay="cosine", d_warmup=1, ema=0.9)
    cfgs = [base.replace(lam=lam) for lam in (0.5, 5.0)]
    separate = [_stage(c, 3, encoder=enc, decoder=dec) for c in cfgs]
    stacked = _stacked(cfgs, 3, encoders=[enc], decoders=[dec])
    assert "generator_ema" in stacked.models
    _compare(separate, stacked, _batches(4))


def test_sweep_functions_write_the_runs_separate_training_would(tmp_path):
    """End to end, float32: same folders, same configurations, weights within float32 drift."""
    vcfg = VAEConfig(dataset="shapes", epochs=1, n_train=96, batch_size=32)
    kw = dict(device="cpu", options=RunOptions(progress=False, stack=True))
    data = load_data("shapes", n_train=96, n_test=16)
    vaes = train_sweep([vcfg.replace(beta=b) for b in (1.0, 4.0)], data, out=tmp_path / "batched", **kw)
    alone = train_vae(vcfg.replace(beta=4.0), data, out=tmp_path / "alone", **kw)
    assert vaes[1].path.name == alone.path.name and vaes[1].config == alone.config
    assert _max_diff(vaes[1].encoder, alone.encoder) < 2e-3
    assert load_run(vaes[1].path).history["sweep"]["beta"] == [1.0, 4.0]

    gcfgs = [GANConfig(vae=vcfg, epochs=1, lam=lam) for lam in (0.5, 2.0, 8.0)]
    gans = train_sweep(gcfgs, data, vaes=[vaes[0]], out=tmp_path / "batched", **kw)
    one = train_lsr_gan(gcfgs[2], data, vae=train_vae(vcfg, data, out=tmp_path / "alone", **kw), out=tmp_path / "alone",
                        **kw)
    assert gans[2].path.name == one.path.name
    assert _max_diff(gans[2].generator, one.generator) < 2e-3
    assert _max_diff(gans[2].discriminator, one.discriminator) < 2e-3
    assert not list(vaes[0].path.glob("sweep-*"))  # the sweep's own folder is cleaned up
    again = train_sweep(gcfgs, data, vaes=[vaes[0]], out=tmp_path / "batched", **kw)
    assert all(r.reused for r in again)
    with pytest.raises(LsrError, match="may differ only in lam"):
        train_sweep([gcfgs[0], gcfgs[1].replace(epochs=2)], data, out=tmp_path / "batched", **kw)


def test_stacked_gans_over_different_vaes_equal_separate_runs():
    """A beta sweep's LSR-GANs, one per VAE, stacked with their encoders side by side, equal separate runs."""
    betas = (0.5, 4.0)
    torch.manual_seed(3)
    encs = []
    for _ in betas:  # two different encoders, with their own running statistics
        e = Encoder().to(D64)
        e.train()(torch.randn(16, 3, 32, 32, dtype=D64))
        encs.append(e.eval().requires_grad_(False))
    decs = [Decoder().to(D64) for _ in betas]
    cfgs = [GANConfig(vae=VAEConfig(dataset="cifar10", beta=b)) for b in betas]
    separate = [_stage(c, 5, encoder=e, decoder=d) for c, e, d in zip(cfgs, encs, decs)]
    stacked = _stacked(cfgs, 5, encoders=encs, decoders=decs)
    step = stacked.step
    assert not step.shared and not any(p.requires_grad for p in step.encoder.parameters())
    _compare(separate, stacked, _batches(3, seed=2))


def test_beta_sweep_gans_train_stacked_end_to_end(tmp_path):
    vcfg = VAEConfig(dataset="shapes", epochs=1, n_train=96, batch_size=32)
    kw = dict(device="cpu", options=RunOptions(progress=False, stack=True))
    data = load_data("shapes", n_train=96, n_test=16)
    vaes = train_sweep([vcfg.replace(beta=b) for b in (1.0, 4.0)], data, out=tmp_path, **kw)
    gcfgs = [GANConfig(vae=v.config, epochs=1) for v in vaes]
    gans = train_sweep(gcfgs, data, vaes=vaes, out=tmp_path, **kw)
    assert [g.path.parent for g in gans] == [v.path for v in vaes]  # each in its own VAE's folder
    alone = train_lsr_gan(gcfgs[1], data, vae=vaes[1], out=tmp_path / "alone", **kw)
    assert _max_diff(gans[1].generator, alone.generator) < 2e-3
    assert load_run(gans[0].path).history["sweep"]["beta"] == [1.0, 4.0]
    assert not list((tmp_path / "shapes").glob("sweep-*"))
