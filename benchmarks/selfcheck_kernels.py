"""Why a captured step can differ from the eager one on a GPU: the same comparisons as ``lsr selfcheck``, with the
default and with deterministic kernels, and eager against eager (the kernels' own spread, no capture involved).

    python benchmarks/selfcheck_kernels.py [--device cuda] [--steps 50] [--stages vae gan] [--json FILE]

Rows: (stage, comparison, kernels) -> the first step and tensor that differ, or "equal". On a CPU the "captured" side
is the emulated capture of :mod:`lsr_utils.speed.selfcheck`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before torch starts cuBLAS (this script is an edge)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lsr_utils.base.runtime import device_name, resolve_device  # noqa: E402
from lsr_utils.speed.selfcheck import EmulatedGraphs, check_captured  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--stages", nargs="+", choices=("vae", "gan"), default=["vae", "gan"])
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    dev = resolve_device(a.device)
    rows = []
    for stage in a.stages:
        for comparison in ("eager vs eager", "captured vs eager"):
            for deterministic in (False, True):
                backend = EmulatedGraphs() if comparison == "eager vs eager" or dev.type != "cuda" else None
                diff = check_captured(stage, dev, a.steps, backend=backend, deterministic=deterministic)
                rows.append({"stage": stage, "comparison": comparison,
                             "kernels": "deterministic" if deterministic else "default",
                             "result": "equal" if diff is None else str(diff)})
                print(f"{stage:4s} {comparison:18s} {rows[-1]['kernels']:13s} {rows[-1]['result']}", flush=True)
    rec = {"device": device_name(dev), "torch": torch.__version__, "steps": a.steps, "rows": rows,
           "command": "python benchmarks/selfcheck_kernels.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if a.json:
        Path(a.json).write_text(json.dumps(rec, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
