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


def test_a_profile_is_decided_in_config_only():
    """No module but config.py names a profile: every other module asks config what a profile decides. (The words
    'paper' and 'custom' also name a network choice, the generator's and the discriminator's, where the configuration
    field says so; those are the only other uses allowed.)"""
    import ast

    from lsr_utils.config import PROFILES

    allowed = {"paper", "custom"}  # GANConfig.generator / .discriminator values, not profiles
    found = []
    for p in sorted((ROOT / "lsr_utils").rglob("*.py")):
        if p.name == "config.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and node.value in PROFILES and node.value not in allowed:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found, found
    src = {p.name: p.read_text() for p in (ROOT / "lsr_utils").rglob("*.py")}
    for name, text in src.items():  # and "paper" never as a profile: no PROFILES["paper"], no profile == "paper"
        if name != "config.py":
            assert 'PROFILES["paper"]' not in text and 'profile == "paper"' not in text, name


def test_the_wheel_ships_what_works_from_an_installed_package(tmp_path, monkeypatch):
    """The wheel holds the library and the notebooks `lsr reproduce` executes; an installed kit (no checkout) finds
    them there and writes its outputs to a folder of its own."""
    import subprocess
    import sys
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    names = zipfile.ZipFile(next((tmp_path / "dist").glob("lsr_kit-*.whl"))).namelist()
    assert "lsr_utils/reproduce.py" in names and "lsr_utils/data/shapes.py" in names
    shipped = {n.rsplit("/", 1)[-1] for n in names if "/share/lsr-kit/notebooks/" in n}
    assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= shipped

    import lsr_utils.reproduce as rp

    data = tmp_path / "prefix"
    (data / "share" / "lsr-kit" / "notebooks").mkdir(parents=True)
    for p in (ROOT / "notebooks").glob("*.ipynb"):
        (data / "share" / "lsr-kit" / "notebooks" / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(rp, "project_root", lambda start=None: tmp_path / "not-a-checkout")
    monkeypatch.setattr("sysconfig.get_paths", lambda vars=None: {"data": str(data)})
    monkeypatch.chdir(tmp_path)
    lay = rp.Layout.of(None, "quick", "shapes")
    assert lay.sources == data / "share" / "lsr-kit" / "notebooks" and not lay.in_place
    assert lay.runs == tmp_path / "lsr-reproduction" / "runs"


def test_the_suite_runs_without_pytest_xdist():
    """The README's command runs the suite on pytest-xdist workers, but the suite must not need them: conftest's
    xdist hook is optional (pytest refuses an unknown hook otherwise)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                        "tests/test_losses.py::test_kl_hand_value"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout
