"""Which colours an LSR-GAN keeps: the object's hue shift by band of the texture-free object's hue (``shapes``).

    python -m benchmarks.hue_bands RUN [RUN ...] [--n-test 1000] [--shrink 1 2 3 4] [--json FILE]

For each finished LSR-GAN run on ``shapes`` (its VAE's data, the demo's 1,000 held-out images by default): the
hue of the mean colour of G(mu(x)) over the object (``lsr_utils.measurement.metrics.flat_object_masks``) against the clean
object's, in twelve 30-degree bands of the clean hue: the mean signed shift (degrees, positive = towards
increasing hue: red -> yellow -> green), the share shifted by more than 30 degrees, and the mean saturation of
the clean object, of G(mu(x)) and of D(mu(x)). ``--shrink S ...``: also the codes moved towards their mean by a
factor 1/S (S = 3-4 brings them to the prior's radius along their widest directions), with how often G's hue
agrees with the VAE decoder's on the same code. Evaluation only; rows print as a table and as JSON lines.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def _saturation(colour: torch.Tensor) -> torch.Tensor:
    mx = colour.max(1).values
    return (mx - colour.min(1).values) / mx.clamp_min(1e-6)


def bands(run_path: str, n_test: int, shrink: list[float]) -> dict:
    from lsr_utils.base.pixels import model_to_unit, uint8_to_model
    from lsr_utils.data import load_data
    from lsr_utils.measurement.evaluate import renderings
    from lsr_utils.measurement.metrics import (
        HUE_TOLERANCE,
        flat_object_masks,
        hue_degrees,
        hue_errors,
        hue_shifts,
        share_within,
    )
    from lsr_utils.measurement.metrics import object_colours as _object_colour
    from lsr_utils.models.finished import load_run

    run = load_run(run_path, device="cpu")
    v = run.config.vae
    if v.dataset != "shapes":
        raise SystemExit(f"{run_path}: a run on {v.dataset}; object hues are defined on shapes only")
    data = load_data("shapes", n_train=v.n_train, n_test=n_test, seed=v.data_seed, progress=False)
    r = renderings(run, data.test_x, clean=data.test_clean, n_random=1)
    mask = flat_object_masks(r.clean)
    hc = hue_degrees(_object_colour(r.clean, mask))
    d = hue_shifts(r.gan, r.clean, mask)
    sat = {k: _saturation(_object_colour(x, mask)) for k, x in (("clean", r.clean), ("gan", r.gan), ("vae", r.vae))}
    rows = []
    for lo in range(0, 360, 30):
        s = (hc >= lo) & (hc < lo + 30)
        if s.any():
            rows.append({"band": [lo, lo + 30], "n": int(s.sum()), "mean_shift": round(d[s].mean().item(), 1),
                         "shifted_pct": round((d[s].abs() >= HUE_TOLERANCE).double().mean().item() * 100, 1),
                         **{f"saturation_{k}": round(x[s].mean().item(), 2) for k, x in sat.items()}})
    out = {"run": "/".join(Path(run_path).resolve().parts[-2:]),  # the VAE's folder and the GAN's, no machine path
           "seed": run.config.seed, "n_test": n_test,
           "hue_kept_lsr_gan": round(share_within(d.abs()).mean, 1), "bands": rows}
    if shrink:
        with torch.no_grad():
            mu = torch.cat([run.vae.encode(uint8_to_model(data.test_x[i:i + 250]))[0]
                            for i in range(0, n_test, 250)])
            centre, shrunk = mu.mean(0), []
            for f in shrink:
                c = centre + (mu - centre) / f
                dd = torch.cat([model_to_unit(run.vae.decode(c[i:i + 250])) for i in range(0, n_test, 250)])
                gg = torch.cat([model_to_unit(run.render(c[i:i + 250])) for i in range(0, n_test, 250)])
                shrunk.append({"factor": f,
                               "g_agrees_with_d_pct": round(share_within(hue_errors(gg, dd, mask)).mean, 1),
                               "d_keeps_clean_pct": round(share_within(hue_errors(dd, r.clean, mask)).mean, 1),
                               "saturation_d": round(_saturation(_object_colour(dd, mask)).mean().item(), 2),
                               "saturation_g": round(_saturation(_object_colour(gg, mask)).mean().item(), 2)})
        out["shrunk_codes"] = shrunk
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished LSR-GAN run folders on shapes")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--shrink", nargs="*", type=float, default=[])
    p.add_argument("--json", default=None, help="append one JSON line per run to this file")
    a = p.parse_args()
    for path in a.runs:
        res = bands(path, a.n_test, a.shrink)
        print(f"# {path}: seed {res['seed']}, object hue within 30 degrees: {res['hue_kept_lsr_gan']:.1f} %")
        print("| clean hue, degrees | n | mean shift of G(mu(x)), degrees | shifted > 30 degrees, % | saturation "
              "clean / G / VAE |")
        print("|---|---|---|---|---|")
        for b in res["bands"]:
            print(f"| {b['band'][0]}-{b['band'][1]} | {b['n']} | {b['mean_shift']:+.1f} | {b['shifted_pct']:.1f} | "
                  f"{b['saturation_clean']:.2f} / {b['saturation_gan']:.2f} / {b['saturation_vae']:.2f} |")
        for s in res.get("shrunk_codes", []):
            print(f"codes moved to 1/{s['factor']:g} of their spread: G's hue within 30 degrees of D's "
                  f"{s['g_agrees_with_d_pct']:.1f} %, D's of the clean object's {s['d_keeps_clean_pct']:.1f} %, "
                  f"saturation D {s['saturation_d']:.2f}, G {s['saturation_g']:.2f}")
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
