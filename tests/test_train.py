import json

import pytest
import torch

from lsr_utils.base.errors import LsrError
from lsr_utils.base.runtime import resolve_device
from lsr_utils.method.config import GANConfig, VAEConfig, make_config
from lsr_utils.models.finished import load_run
from lsr_utils.training.loop import RunOptions
from lsr_utils.training.train import run_path, train_lsr_gan, train_vae


def tiny(vae_epochs=2, gan_epochs=1, **kw) -> GANConfig:
    return make_config("smoke", n_train=96, vae_epochs=vae_epochs, gan_epochs=gan_epochs, **kw)


def _weights(run):
    return {k: v.clone() for k, v in run.encoder.state_dict().items()} | \
        {"dec." + k: v.clone() for k, v in run.decoder.state_dict().items()}


class Crash(Exception):
    pass


def crash_at(step):
    def cb(event, info):
        if event == "step" and info["step"] == step:
            raise Crash(f"simulated crash at step {step}")
    return cb


def test_vae_run_folder_contents_and_reuse(tmp_path, tiny_shapes):
    cfg = tiny().vae
    run = train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    assert run.path == run_path(cfg, tiny_shapes, out=tmp_path) and not run.reused
    names = {p.name for p in run.path.iterdir()}
    assert {"config.json", "run.json", "history.json", "weights.pt"} <= names and "checkpoint.pt" not in names
    saved = json.loads((run.path / "config.json").read_text())
    assert saved["kind"] == "vae" and saved["config"]["beta"] == 1.0 and "lsr_version" in saved
    assert json.loads((run.path / "run.json").read_text())["status"] == "finished"
    assert len(run.history["epoch"]["loss"]) == 2
    again = train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    assert again.reused
    for k, v in _weights(run).items():
        assert torch.equal(v, _weights(again)[k])


def test_resumed_run_equals_uninterrupted_run(tmp_path, tiny_shapes):
    cfg = tiny(vae_epochs=3).vae  # 3 batches per epoch, 9 steps
    ref = train_vae(cfg, tiny_shapes, out=tmp_path / "a", options=RunOptions(progress=False))
    # crash mid-epoch 2, after a mid-epoch checkpoint at step 4
    with pytest.raises(Crash):
        train_vae(cfg, tiny_shapes, out=tmp_path / "b", options=RunOptions(progress=False, checkpoint_every_steps=4, callbacks=[crash_at(5)]))
    path = run_path(cfg, tiny_shapes, out=tmp_path / "b")
    assert (path / "checkpoint.pt").exists() and not (path / "weights.pt").exists()
    resumed = train_vae(cfg, tiny_shapes, out=tmp_path / "b", options=RunOptions(progress=False))
    wa, wb = _weights(ref), _weights(resumed)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert ref.history["epoch"] == resumed.history["epoch"]


def test_resumed_gan_equals_uninterrupted_gan(tmp_path, tiny_shapes):
    cfg = tiny(vae_epochs=1, gan_epochs=2)
    vae = train_vae(cfg.vae, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    ref = train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path / "a", options=RunOptions(progress=False))
    with pytest.raises(Crash):
        train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path / "b", options=RunOptions(progress=False, checkpoint_every_steps=2, callbacks=[crash_at(4)]))
    resumed = train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path / "b", options=RunOptions(progress=False))
    for a, b in zip(ref.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.discriminator.state_dict().values(), resumed.discriminator.state_dict().values()):
        assert torch.equal(a, b)


def test_gan_freezes_encoder_and_starts_from_decoder(tmp_path, tiny_shapes):
    cfg = tiny(vae_epochs=1, gan_epochs=1)
    vae = train_vae(cfg.vae, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    enc_before = {k: v.clone() for k, v in vae.encoder.state_dict().items()}
    seen = {}

    def check(event, info):
        if event == "step" and info["step"] == 1:
            seen["step"] = True

    gan = train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False, callbacks=[check]))
    assert seen
    for k, v in vae.encoder.state_dict().items():
        assert torch.equal(v, enc_before[k]), k  # incl. BN running stats: eval mode
    assert gan.path.parent == vae.path  # a GAN run lives in its VAE's folder
    loaded = load_run(gan.path)
    assert loaded.reused and loaded.config.replace(vae=loaded.config.vae.replace(data_id=None)) == cfg
    assert loaded.config.vae.data_id.startswith("shapes:") and loaded.config.vae.data_id.endswith("|n=96")
    # the generator moved away from the decoder it started from, but only by training
    diff = sum((a.float() - b.float()).abs().sum() for a, b in
               zip(gan.generator.state_dict().values(), vae.decoder.state_dict().values()))
    assert diff > 0


def test_gan_step_never_changes_the_encoder_it_uses():
    """After GAN steps, the encoder the step used has no gradient and unchanged weights and running statistics."""
    from lsr_utils.method.nn import Decoder, Encoder
    from lsr_utils.method.stage import Build, build_stage

    torch.manual_seed(0)
    enc = Encoder()
    enc.train()(torch.randn(16, 3, 32, 32))  # non-trivial running statistics
    enc.eval()
    given = {k: v.clone() for k, v in enc.state_dict().items()}
    cfg = GANConfig(vae=VAEConfig(dataset="shapes"), lr=1e-2)
    stage = build_stage(cfg, torch.device("cpu"), total_steps=3, encoder=enc, decoder=Decoder(),
                        how=Build(channels_last=False))
    step, gen = stage.step, stage.models["generator"]
    used = {k: v.clone() for k, v in step.encoder.state_dict().items()}
    gen_before = gen.to_image.weight.clone()
    for i in range(3):
        step(torch.rand(8, 3, 32, 32) * 2 - 1, i)
    assert not torch.equal(gen.to_image.weight, gen_before)  # the steps trained the generator
    for name, module in (("the encoder given", enc), ("the encoder the step ran", step.encoder)):
        for p in module.parameters():
            assert p.grad is None, f"{name} received a gradient"
    for k, v in enc.state_dict().items():
        assert torch.equal(v, given[k]), f"the encoder given changed: {k}"
    for k, v in step.encoder.state_dict().items():
        assert torch.equal(v, used[k]), f"the encoder the step ran changed: {k}"
    assert not step.encoder.training and not enc.training


def test_generator_initialised_from_vae_decoder(tmp_path, tiny_shapes):
    cfg = tiny(vae_epochs=1, gan_epochs=1)
    vae = train_vae(cfg.vae, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    # a zero-learning-rate GAN leaves the generator's weights (not BN running stats) at its init
    frozen = cfg.replace(lr=0.0)
    gan = train_lsr_gan(frozen, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False))
    for (k, a), b in zip(gan.generator.named_parameters(), vae.decoder.parameters()):
        assert torch.equal(a, b), k
    scratch = train_lsr_gan(frozen.replace(init="scratch"), tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False))
    assert not torch.equal(scratch.generator.to_image.weight, vae.decoder.to_image.weight)


def test_corrupt_checkpoint_names_the_file(tmp_path, tiny_shapes):
    cfg = tiny().vae
    path = run_path(cfg, tiny_shapes, out=tmp_path)
    path.mkdir(parents=True)
    (path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LsrError, match="checkpoint.pt: cannot read"):
        train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    assert (path / "checkpoint.pt").read_bytes() == b"not a checkpoint"  # untouched


def test_incompatible_checkpoint_names_the_mismatch(tmp_path, tiny_shapes):
    cfg = tiny().vae
    with pytest.raises(Crash):
        train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False, checkpoint_every_steps=1, callbacks=[crash_at(2)]))
    path = run_path(cfg, tiny_shapes, out=tmp_path)
    ck = torch.load(path / "checkpoint.pt", weights_only=True)
    ck["models"]["encoder"]["mu.weight"] = torch.zeros(3, 3)
    torch.save(ck, path / "checkpoint.pt")
    with pytest.raises(LsrError, match=r"checkpoint.pt: the saved encoder does not fit"):
        train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))


def test_data_geometry_mismatch_is_refused(tmp_path, tiny_shapes):
    cfg = VAEConfig(dataset="shapes", image_size=28, channels=1, epochs=1, n_train=96)
    with pytest.raises(LsrError, match="3x32x32 images but the configuration expects 1x28x28"):
        train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))


@pytest.mark.parametrize("kw,msg", [(dict(beta=-1), "beta"), (dict(beta="x"), "beta"), (dict(epochs=0), "epochs"),
                                    (dict(dataset="nope"), "valid datasets"), (dict(batch_size=1), "batch_size")])
def test_bad_config_values(kw, msg):
    with pytest.raises(LsrError, match=msg):
        VAEConfig(**kw)
    with pytest.raises(LsrError, match="lambda"):
        GANConfig(lam=float("nan"))


def test_cuda_without_gpu_is_refused():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(LsrError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_bf16_is_flagged_where_the_cpu_only_emulates_it(tmp_path, monkeypatch):
    """bf16 autocast on a CPU without bf16 instructions is about 16x slower than fp32: the kit says so."""
    from lsr_utils.base import runtime

    cpu = torch.device("cpu")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert runtime.cpu_flags(str(info)) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert runtime.cpu_flags(str(tmp_path / "absent")) is None
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    assert runtime.native_bf16(cpu, {"avx2", "fma"}) is False
    assert runtime.native_bf16(cpu, {"avx512f", "avx512_bf16"}) is True
    assert runtime.native_bf16(cpu, {"amx_bf16"}) is True
    monkeypatch.setattr(runtime, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2"})
    msg = runtime.bf16_warning(cpu, "bf16")
    assert "emulated" in msg and "--precision fp32" in msg
    assert runtime.bf16_warning(cpu, "fp32") is None
    monkeypatch.setattr(runtime, "cpu_flags", lambda path="/proc/cpuinfo": None)  # cannot tell: no warning
    assert runtime.bf16_warning(cpu, "bf16") is None


def test_every_run_writes_its_losses_where_researchers_look(tmp_path, tiny_shapes):
    """losses.csv (always) and TensorBoard event files (tensorboard installed), matching the run's history; a
    resumed run's log has each step once."""
    from lsr_utils.storage.runs import read_loss_csv

    cfg = tiny(vae_epochs=3).vae.replace(batch_size=8)  # 12 steps per epoch, 36 in all; a log row every 5 steps
    with pytest.raises(Crash):
        train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False, checkpoint_every_steps=10, log_every=5, callbacks=[crash_at(27)]))  # after the row of step 25, past the checkpoint at 20
    run = train_vae(cfg, tiny_shapes, out=tmp_path, options=RunOptions(progress=False, log_every=5))
    log = read_loss_csv(run.path)
    assert log["steps"]["step"] == run.history["steps"]["step"] == list(range(5, 37, 5))
    for name in ("loss", "kl_per_image", "mse_per_pixel"):
        assert log["steps"][name] == pytest.approx(run.history["steps"][name])
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = tb.EventAccumulator(str(run.path / "tb"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("loss")]
    assert steps == log["steps"]["step"]  # the steps after the checkpoint, logged once (purged, then rewritten)


def test_the_quick_recipe_differs_from_the_papers_only_in_its_named_fields():
    """The paper profile trains the paper's recipe; the quick profile (the demo's) changes the learning rates,
    adds the moving average of G and its statistics for codes of real images, and says so in every record (recipe_differences), so that no run passes for
    the paper's while following another recipe. lambda of the demo is the profile's."""
    from lsr_utils.method.config import infer_profile, make_config, profile_for, recipe_differences

    assert recipe_differences(make_config("paper", dataset="cifar10")) == []
    quick = make_config("quick", dataset="shapes", lam=profile_for("quick", "shapes").demo_lam)
    diffs = {(d["stage"], d["field"]): (d["kit"], d["paper"]) for d in recipe_differences(quick)}
    assert diffs == {("vae", "lr"): (1e-3, 2e-4), ("lsr_gan", "d_lr"): (5e-5, 2e-4),
                     ("lsr_gan", "ema"): (0.995, 0.0), ("lsr_gan", "ema_warmup"): (0, None),
                     ("lsr_gan", "code_stats"): (100, 0), ("lsr_gan", "code_share"): (0.5, 1.0),
                     ("lsr_gan", "lam"): (5.0, 1.0)}
    assert (quick.vae.epochs, quick.epochs) == (3, 2)
    assert infer_profile(quick) == "quick"
    # the same sizes with the paper's recipe are no profile's
    assert infer_profile(quick.replace(ema=0.0)) == "custom"
    # the ramp is part of the recipe: the former quick recipe (a ramped 0.99) is no longer the profile's
    assert infer_profile(quick.replace(ema=0.99, ema_warmup=10)) == "custom"
    # nor is the recipe before the statistics over codes (2026-12-06)
    assert infer_profile(quick.replace(code_stats=0, code_share=1.0)) == "custom"
    # no moving average, no ramp to report
    assert recipe_differences(quick.replace(ema=0.0, ema_warmup=0)) == [
        d for d in recipe_differences(quick) if d["field"] not in ("ema", "ema_warmup")]
    # the same recipe, only the dataset changes
    digits = make_config("quick", dataset="mnist-test")
    assert {(d["stage"], d["field"]) for d in recipe_differences(digits)} == {k for k in diffs if k[1] != "lam"}


def test_the_demo_trains_the_quick_recipe_with_its_lambda_on_both_datasets():
    """`lsr demo` trains the quick profile's recipe and schedule (3 + 2 epochs) with the demo's lambda (5), on `shapes`
    and on the digits alike (only the dataset changes), with the seed it is given; the smoke profile's demo keeps
    its own sizes."""
    from lsr_utils.apps.demo import demo_config
    from lsr_utils.method.config import make_config

    for dataset in ("shapes", "mnist-test"):
        cfg = demo_config("quick", dataset, seed=14)
        assert (cfg.vae.epochs, cfg.epochs, cfg.lam, cfg.seed, cfg.vae.seed) == (3, 2, 5.0, 14, 14)
        assert cfg.vae.lr == 1e-3 and (cfg.ema, cfg.ema_warmup) == (0.995, 0) and cfg.d_lr == 5e-5
        assert cfg.vae.dataset == dataset
        assert cfg.replace(lam=1.0) == make_config("quick", dataset=dataset, seed=14)
    smoke = demo_config("smoke")
    assert (smoke.vae.epochs, smoke.epochs) == (make_config("smoke").vae.epochs, make_config("smoke").epochs)


@pytest.mark.parametrize("change, says", [({"lr_decay": "cosine"}, "constant learning rate"),
                                          ({"ema": 0.99}, "ramped moving average"),
                                          ({"ema": 0.995, "ema_warmup": 0}, "CUDA device")])
def test_captured_steps_refuse_a_recipe_whose_step_changes_over_time(change, says):
    """A CUDA graph replays the step it captured: a decaying learning rate or the moving average's ramping decay
    would be frozen at the capture's value, silently. Capturing refuses both before it needs a GPU; a constant
    decay (ema_warmup 0, the quick recipe's) captures as it is, so only the missing CUDA device is reported."""
    from lsr_utils.method.nn import Decoder, Encoder
    from lsr_utils.method.stage import Build, build_stage
    from lsr_utils.speed.captured import capture

    cfg = GANConfig(vae=VAEConfig(dataset="shapes"), **change)
    stage = build_stage(cfg, torch.device("cpu"), total_steps=3, encoder=Encoder(), decoder=Decoder(),
                        how=Build(channels_last=False))  # eager: fine
    with pytest.raises(LsrError, match=says):
        capture(stage)


@pytest.mark.parametrize("warmup, decay", [(10, 0.1), (0, 0.9)])
def test_the_moving_average_ramps_its_decay_unless_told_not_to(warmup, decay):
    """After the first generator update the moving average is d * G_0 + (1 - d) * G_1, with d = min(ema, 1 / 10)
    under the default ramp and d = ema from the first update with ema_warmup = 0."""
    from lsr_utils.method.nn import Decoder, Encoder
    from lsr_utils.method.stage import Build, build_stage

    torch.manual_seed(0)
    cfg = GANConfig(vae=VAEConfig(dataset="shapes"), lr=1e-2, ema=0.9, ema_warmup=warmup)
    stage = build_stage(cfg, torch.device("cpu"), total_steps=1, encoder=Encoder().eval(), decoder=Decoder(),
                        how=Build(channels_last=False))
    gen, ema = stage.models["generator"], stage.models["generator_ema"]
    w0 = gen.to_image.weight.detach().clone()
    stage.step(torch.rand(8, 3, 32, 32) * 2 - 1, 0)
    w1 = gen.to_image.weight.detach()
    assert not torch.equal(w0, w1)
    assert torch.allclose(ema.to_image.weight, decay * w0 + (1 - decay) * w1, atol=1e-6)


def test_code_statistics_render_codes_of_real_images_and_leave_random_samples_alone(tmp_path, tiny_shapes):
    """GANConfig.code_stats: once stage 2 ends, the rendering generator (here the moving average) gets its
    BatchNorm statistics gathered over that many batches of 32 training codes mu(x) drawn with the run's seed,
    kept beside it as "generator_codes"; GANRun.render uses them, GANRun.generate (prior samples) does not. Off
    (the paper's) it changes nothing, not even the run's folder name."""
    from lsr_utils.base.files import load_tensors
    from lsr_utils.base.pixels import uint8_to_model
    from lsr_utils.storage.runs import run_name

    smoke = tiny(vae_epochs=1, gan_epochs=1)
    assert smoke.ema  # the smoke profile keeps the quick recipe's moving average ...
    assert (smoke.code_stats, smoke.code_share) == (10, 0.5)  # ... and its statistics over codes and prior samples
    base = smoke.replace(code_stats=0, code_share=1.0)   # off: the paper's
    assert "code_stats" not in base.to_dict()  # the default leaves every existing run's name as it was
    vae = train_vae(base.vae, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    plain = train_lsr_gan(base, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False))
    assert plain.code_generator is None
    assert "generator_codes" not in load_tensors(plain.path / "weights.pt")
    cfg = base.replace(code_stats=3)
    assert run_name(cfg) != run_name(base)
    run = train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False))
    assert "generator_codes" in load_tensors(run.path / "weights.pt")
    g, c = run.generator, run.code_generator
    for (name, a), b in zip(g.named_parameters(), c.parameters()):
        assert torch.equal(a, b), name  # the same weights (the moving average's) ...
    # ... and the first BatchNorm's mean is the mean of its input over the 3 x 32 drawn training codes
    pick = torch.Generator().manual_seed(cfg.seed)
    x = torch.cat([tiny_shapes.train_x[torch.randint(0, len(tiny_shapes.train_x), (32,), generator=pick)]
                   for _ in range(3)])
    mu = vae.encode(uint8_to_model(x))[0]
    with torch.no_grad():
        h = c.fc[0](mu)
    assert torch.allclose(c.fc[1].running_mean, h.mean(0), atol=1e-5)
    assert not torch.allclose(g.fc[1].running_mean, h.mean(0), atol=1e-3)
    assert not torch.equal(run.render(mu[:8]), run.generate(mu[:8]))
    assert torch.equal(plain.render(mu[:8]), plain.generate(mu[:8]))
    assert torch.equal(run.generate(mu[:8]), train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False)).generate(mu[:8]))


def test_code_share_mixes_prior_samples_into_the_code_statistics(tmp_path, tiny_shapes):
    """GANConfig.code_share: each of code_stats' batches of 32 is round(32 x share) training codes then prior
    samples z ~ N(0, I), both drawn with one generator seeded with the run's seed; the first BatchNorm's mean is
    its input's mean over those batches. At its default (1: codes only) the run's name is unchanged."""
    from lsr_utils.base.pixels import uint8_to_model
    from lsr_utils.method.config import LsrError, recipe_differences
    from lsr_utils.storage.runs import run_name

    base = tiny(vae_epochs=1, gan_epochs=1).replace(code_stats=2, code_share=1.0)
    assert "code_share" not in base.to_dict() and run_name(base.replace(code_share=1.0)) == run_name(base)
    assert not any(d["field"] == "code_share" for d in recipe_differences(base.replace(code_stats=0, code_share=0.5)))
    with pytest.raises(LsrError, match="code_share"):
        base.replace(code_share=0.0)
    vae = train_vae(base.vae, tiny_shapes, out=tmp_path, options=RunOptions(progress=False))
    cfg = base.replace(code_share=0.25)
    run = train_lsr_gan(cfg, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False))
    pick = torch.Generator().manual_seed(cfg.seed)
    batches = []
    for _ in range(2):
        idx = torch.randint(0, len(tiny_shapes.train_x), (8,), generator=pick)
        mu = vae.encode(uint8_to_model(tiny_shapes.train_x[idx]))[0]
        batches.append(torch.cat([mu, torch.randn(24, mu.shape[1], generator=pick)]))
    c = run.code_generator
    with torch.no_grad():
        h = c.fc[0](torch.cat(batches))
    assert torch.allclose(c.fc[1].running_mean, h.mean(0), atol=1e-5)
    codes_only = train_lsr_gan(base, tiny_shapes, vae=vae, out=tmp_path, options=RunOptions(progress=False)).code_generator
    assert not torch.allclose(codes_only.fc[1].running_mean, h.mean(0), atol=1e-3)
