"""The kit's fast training path does the reference's math (issue: speed, "identical in math").

From the same initial weights, the same images and the same noise, the kit's
``VAEStep`` / ``GANStep`` (uint8 data converted on the device, channels-last,
losses kept on the device, logits + BCE-with-logits) and the reference-style
steps of ``lsr_utils.reference`` (per-item PIL/ToTensor/Normalize, NCHW,
sigmoid + BCE, ``.item()`` every step) give the same losses step after step
and the same weights at the end. A changed beta or lambda is detected by the
same comparison (the negative controls), so the tolerance is meaningful.

The comparison runs in float64. In float32 the two paths round differently
(channels-last and NCHW convolutions sum in different orders), and Adam turns
a rounding-level difference in a near-zero gradient into a full learning-rate
step of either sign, so float32 trajectories drift apart by about 1e-3 after a
few steps whatever the code does. In float64 that drift is below 1e-9, and any
change to the math shows.
"""
import copy

import numpy as np
import pytest
import torch

from benchmarks.reference import ReferenceGANStep, ReferenceStyleDataset, ReferenceVAEStep
from lsr_utils.base.pixels import uint8_to_model
from lsr_utils.method.config import GANConfig, VAEConfig
from lsr_utils.method.nn import Decoder, Discriminator, Encoder
from lsr_utils.method.stage import Build, build_stage

STEPS = 6
BATCH = 8
DTYPE = torch.float64
RTOL = 1e-8


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    chw = rng.integers(0, 256, (STEPS * BATCH, 3, 32, 32), dtype=np.uint8)
    ds = ReferenceStyleDataset(np.ascontiguousarray(chw.transpose(0, 2, 3, 1)))
    out = []
    for i in range(STEPS):
        idx = range(i * BATCH, (i + 1) * BATCH)
        ref = torch.stack([ds[j][0] for j in idx]).to(DTYPE)  # the reference's per-item transforms
        kit = uint8_to_model(torch.from_numpy(chw[i * BATCH:(i + 1) * BATCH]), DTYPE).contiguous(
            memory_format=torch.channels_last)  # the kit's on-device conversion
        out.append((ref, kit))
    return out


def _channels_last(*mods):
    return [copy.deepcopy(m).to(memory_format=torch.channels_last) for m in mods]


def _double(*mods):
    return [m.to(DTYPE) for m in mods]


def _run_vae(kit_beta):
    torch.manual_seed(0)
    enc, dec = _double(Encoder(), Decoder())
    stage = kit_stage(VAEConfig(dataset="cifar10", beta=kit_beta), {"encoder": enc, "decoder": dec}, 5)
    enc_k, dec_k = stage.models["encoder"], stage.models["decoder"]
    ref = ReferenceVAEStep(enc, dec, beta=1.0, noise=torch.Generator().manual_seed(5))
    ref_losses, kit_losses = [], []
    for i, (x_ref, x_kit) in enumerate(_batches()):
        loss, rec, kld = ref(x_ref)
        ref_losses.append([loss, rec, kld])
        v = stage.step(x_kit, i).tolist()
        kit_losses.append([v[0], v[1], v[2] * BATCH])
    return np.array(ref_losses), np.array(kit_losses), (enc, dec), (enc_k, dec_k)


def kit_stage(cfg, nets: dict, noise_seed: int, dtype=DTYPE, compile: bool = False, **kw):
    """The kit's stage of ``cfg`` from its one builder, holding the weights of ``nets`` (name -> network)."""
    stage = build_stage(cfg, torch.device("cpu"), total_steps=STEPS, how=Build(dtype=dtype, compile=compile), **kw)
    for name, net in nets.items():
        stage.models[name].load_state_dict(net.state_dict())
    stage.noise.manual_seed(noise_seed)
    return stage


def _max_param_diff(a_mods, b_mods):
    return max(float((pa.detach() - pb.detach()).abs().max()) for ma, mb in zip(a_mods, b_mods)
               for pa, pb in zip(ma.parameters(), mb.parameters()))


def test_inputs_agree():
    for x_ref, x_kit in _batches():
        assert torch.allclose(x_ref, x_kit, atol=1e-6)


def test_vae_step_matches_reference():
    ref, kit, ref_mods, kit_mods = _run_vae(kit_beta=1.0)
    np.testing.assert_allclose(kit, ref, rtol=RTOL)
    assert _max_param_diff(ref_mods, kit_mods) < 1e-6
    # the steps did train: the weights moved by far more than the tolerance
    torch.manual_seed(0)
    assert _max_param_diff(_double(Encoder(), Decoder()), kit_mods) > 1e-4


def test_vae_comparison_detects_a_changed_beta():
    ref, kit, _, _ = _run_vae(kit_beta=1.001)
    assert not np.allclose(kit[1:, 0], ref[1:, 0], rtol=RTOL)


def _run_gan(kit_lam):
    torch.manual_seed(1)
    enc, gen, disc = _double(Encoder().eval(), Decoder(), Discriminator())
    enc_k = copy.deepcopy(enc)
    # the generator starts from the decoder given (the VAE's, in a real run), as the reference's does
    stage = kit_stage(GANConfig(vae=VAEConfig(dataset="cifar10"), lam=kit_lam), {"discriminator": disc}, 7,
                      encoder=enc_k, decoder=gen)
    gen_k, disc_k = stage.models["generator"], stage.models["discriminator"]
    ref = ReferenceGANStep(enc, gen, disc, lam=1.0, noise=torch.Generator().manual_seed(7))
    ref_losses, kit_losses = [], []
    for i, (x_ref, x_kit) in enumerate(_batches(1)):
        ref_losses.append(list(ref(x_ref)))
        v = stage.step(x_kit, i).tolist()  # g_total, d_total, g_adversarial, lsr, d_real, d_fake
        kit_losses.append([v[1], v[2], kit_lam * v[3]])
    return np.array(ref_losses), np.array(kit_losses), (gen, disc), (gen_k, disc_k), enc, enc_k


def test_gan_step_matches_reference():
    ref, kit, ref_mods, kit_mods, enc, enc_k = _run_gan(kit_lam=1.0)
    np.testing.assert_allclose(kit, ref, rtol=RTOL)
    assert _max_param_diff(ref_mods, kit_mods) < 1e-6
    # the encoder stayed frozen in both
    assert _max_param_diff([enc], [enc_k]) == 0.0


def test_gan_comparison_detects_a_changed_lambda():
    ref, kit, _, _, _, _ = _run_gan(kit_lam=1.001)
    assert not np.allclose(kit[:, 2], ref[:, 2], rtol=RTOL)


@pytest.mark.parametrize("stage", ["vae", "gan"])
def test_compiled_step_matches_eager(stage):
    """The ``--compile`` path (torch.compile of the networks) gives the eager path's losses."""
    pytest.importorskip("torch._dynamo")
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler, absent here")
    torch.manual_seed(2)
    if stage == "vae":
        cfg, nets, kw = VAEConfig(dataset="cifar10"), {"encoder": Encoder(), "decoder": Decoder()}, {}
    else:
        cfg, nets = GANConfig(vae=VAEConfig(dataset="cifar10")), {"discriminator": Discriminator()}
        kw = {"encoder": Encoder().eval(), "decoder": Decoder()}
    runs = []
    for compile_ in (False, True):
        stage = kit_stage(cfg, nets, 3, dtype=torch.float32, compile=compile_, **kw)
        runs.append(np.array([stage.step(x.float(), i).tolist() for i, (_, x) in enumerate(_batches()[:3])]))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-3, atol=1e-5)
