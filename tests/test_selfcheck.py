"""The captured (CUDA-graph) step's logic and the stacked steps, checked on the CPU; `lsr selfcheck` itself."""
import torch

from lsr_utils.apps.cli import main
from lsr_utils.data import DeviceBatches
from lsr_utils.speed.selfcheck import EmulatedGraphs, check_captured


def test_captured_step_logic_equals_eager():
    backend = EmulatedGraphs()
    assert check_captured("vae", "cpu", steps=12, backend=backend) is None
    # 8 full batches then 4 last, smaller ones: each shape warms up 3 times, then gets its own graph
    assert backend.captures == 2 and backend.replays == (8 - 3) + (4 - 3)


def test_captured_comparison_names_the_first_difference():
    def wrong_lambda(step):
        step.lam = 1.01

    diff = check_captured("gan", "cpu", steps=5, backend=EmulatedGraphs(), perturb=wrong_lambda)
    assert diff is not None and diff.step == 1 and diff.tensor.startswith("loss g_")
    assert "step 1: loss g_" in str(diff)


def test_captured_comparison_catches_a_graph_that_stops_following_its_input():
    import lsr_utils.speed.selfcheck as sc
    from lsr_utils.speed.captured import CapturedStep

    class NoCopy(CapturedStep):  # a bug: after capture, the new batch never reaches the static buffer
        def __call__(self, x, global_step=0):
            key = (tuple(x.shape), tuple(x.stride()), x.dtype, self.step.phase(global_step))
            if key in self.graphs:
                return self.backend.replay(self.graphs[key][0])
            return super().__call__(x, global_step)

    real = sc.CapturedStep
    sc.CapturedStep = NoCopy
    try:
        diff = check_captured("vae", "cpu", steps=10, backend=EmulatedGraphs())
    finally:
        sc.CapturedStep = real
    assert diff is not None and diff.step == 5  # the first step that replays a stale batch


def test_device_batches_have_at_most_two_static_shapes_and_see_every_image():
    imgs = torch.arange(70, dtype=torch.uint8).view(70, 1, 1, 1).expand(70, 3, 2, 2).contiguous()
    b = DeviceBatches(imgs, 32, "cpu")
    assert b.shapes == [32, 6] and len(b) == 3
    perm = b.permutation(torch.Generator().manual_seed(0))
    seen = torch.cat([b.batch(perm, i) for i in range(len(b))])
    assert sorted(((seen[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()) == list(range(70))


def test_selfcheck_command_on_the_cpu(capsys):
    """The command compares, on this CPU, the captured steps (emulated graphs) and 3 stacked members against 3
    single runs (float64) of both stages: every comparison equal."""
    assert main(["selfcheck", "--device", "cpu", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "emulated" in out and "all equal" in out
    assert out.count("3 stacked members vs 3 single runs, float64: equal") == 2


def test_deterministic_kernels_are_on_inside_the_check_and_restored_after_it():
    from lsr_utils.speed.selfcheck import deterministic_kernels

    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
              torch.are_deterministic_algorithms_enabled())
    with deterministic_kernels():
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled()) == before
    with deterministic_kernels(False):
        assert torch.are_deterministic_algorithms_enabled() == before[2]


def test_the_deterministic_comparison_still_names_a_difference():
    def wrong_lambda(step):
        step.lam = 1.01

    assert check_captured("gan", "cpu", steps=5, backend=EmulatedGraphs(), deterministic=True) is None
    diff = check_captured("gan", "cpu", steps=5, backend=EmulatedGraphs(), perturb=wrong_lambda, deterministic=True)
    assert diff is not None and diff.step == 1
    assert not torch.are_deterministic_algorithms_enabled()  # restored even though the check returned early


def test_selfcheck_kernels_benchmark_on_the_cpu(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks.selfcheck_kernels import main as kernels

    out = tmp_path / "k.json"
    assert kernels(["--device", "cpu", "--steps", "5", "--stages", "vae", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert len(rec["rows"]) == 4 and all(r["result"] == "equal" for r in rec["rows"])
    assert {(r["comparison"], r["kernels"]) for r in rec["rows"]} == {
        (c, k) for c in ("eager vs eager", "captured vs eager") for k in ("default", "deterministic")}
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, sys.stderr
