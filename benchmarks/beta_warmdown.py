"""Diagnostic: does a stage 1 that starts at a larger beta bring the codes mu(x) closer to the prior?

    python -m benchmarks.beta_warmdown RUNS --panel DEMO_RUNS --seed S --beta-from B --steps K [--json FILE]
                                       [--figure FILE.png]

The demo's configuration, with stage 1's beta lowered linearly from B to the configuration's (1) over its first K
steps and held there after (eq. 2 and 5 with a schedule on beta; the final objective is the paper's), then stage 2
and the rows of ``benchmarks.prior_mismatch`` on the result (the covariance of the codes, the renderings of
z ~ N(0, I) read by the demo's panel). A larger beta early penalises the KL of eq. 2 more, the pressure that
switches unused latent dimensions off (section 2.3); whether it does so within the demo's steps is the question.

The schedule is not a field of the run's configuration (it is not part of the kit's recipe), so a VAE trained here
would be saved under the plain configuration's folder name: ``RUNS`` must hold no VAE run (use a fresh folder); the
panel's five classifiers are copied into it from ``DEMO_RUNS``, the runs folder of a finished ``lsr demo --seed S``.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def beta_at(step: int, beta: float, beta_from: float, steps: int) -> float:
    """Beta at a global step: ``beta_from`` at step 0, linearly down to ``beta`` at ``steps``, ``beta`` after."""
    f = max(0.0, 1.0 - step / steps) if steps else 0.0
    return beta + (beta_from - beta) * f


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", help="a fresh runs folder (no VAE run in it)")
    p.add_argument("--panel", required=True, help="the runs folder of a finished lsr demo (its classifiers)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--beta-from", type=float, required=True)
    p.add_argument("--steps", type=int, required=True, help="steps over which beta falls to the configuration's")
    p.add_argument("--json", default=None)
    p.add_argument("--figure", default=None)
    a = p.parse_args()

    from benchmarks import prior_mismatch
    from lsr_utils.method import steps
    from lsr_utils.method.config import profile_for

    runs, dataset = Path(a.runs), "shapes"
    if any((runs / dataset).glob("vae-*")):
        raise SystemExit(f"{runs} holds a VAE run already: give a fresh folder (the schedule is not in a run's name)")
    classifiers = sorted((Path(a.panel) / dataset).glob("classifier-*"))
    if not classifiers:
        raise SystemExit(f"{a.panel} holds no classifier of {dataset}: run lsr demo --seed {a.seed} there first")
    for c in classifiers:
        shutil.copytree(c, runs / dataset / c.name, dirs_exist_ok=True)

    plain = steps.VAEStep.__call__

    def scheduled(self, x, global_step=0):
        cfgs = self.cfgs
        self.cfgs = [c.replace(beta=beta_at(global_step, c.beta, a.beta_from, a.steps)) for c in cfgs]
        try:
            return plain(self, x, global_step)
        finally:
            self.cfgs = cfgs

    steps.VAEStep.__call__ = scheduled
    # the demo's own stage-1 length, named: prior_mismatch then trains in RUNS what is not there (not only reads)
    argv = [str(runs), "--seed", str(a.seed), "--vae-epochs", str(profile_for("quick", dataset).vae_epochs)]
    argv += ["--json", a.json] if a.json else []
    argv += ["--figure", a.figure] if a.figure else []
    prior_mismatch.main(argv, note={"beta_schedule": {"from": a.beta_from, "steps": a.steps,
                                                      "rule": "linear from 'from' to the configuration's beta"}})


if __name__ == "__main__":
    main()
