"""environment.yml and pyproject.toml must list the same dependencies; torch is pinned in both."""
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in proj["dependencies"]}
    for extra in ("notebooks", "cluster", "dev", "pythae"):
        wanted |= {_norm(r) for r in proj["optional-dependencies"][extra]}
    pip_lines = []
    in_pip = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.strip() == "- pip:":
            in_pip = True
            continue
        if in_pip:
            m = re.match(r"\s+- (.+)", line)
            if m and not m.group(1).startswith("-e"):
                pip_lines.append(m.group(1).split("#")[0])
    assert {_norm(r) for r in pip_lines} == wanted


def test_torch_pinned():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
