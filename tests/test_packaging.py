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

    from lsr_utils.method.config import PROFILES

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
    assert "lsr_utils/apps/reproduce.py" in names and "lsr_utils/data/shapes.py" in names
    shipped = {n.rsplit("/", 1)[-1] for n in names if "/share/lsr-kit/notebooks/" in n}
    assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= shipped

    import lsr_utils.apps.reproduce as rp

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


def _readme_line(pattern: str) -> str:
    """A line of the README's commands as .ci/run reads it (the first match, its trailing comment dropped)."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if re.match(pattern, line):
            return re.sub(r"\s+#.*$", "", line)
    raise AssertionError(f"README.md has no line matching {pattern!r}")


def test_ci_runs_the_readmes_own_install_and_test_lines():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_line '^pip install -e" in ci and "readme_line '^LSR_PROFILE=smoke python -m pytest " in ci
    assert 'eval "$INSTALL' in ci and 'eval "$TESTS"' in ci
    commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert not [c for c in commands if re.search(r"\bpip install\b", c) and "readme_line" not in c], \
        "CI installs the kit only as the README says"
    assert _readme_line(r'^pip install -e "\.\[').startswith('pip install -e ".[')
    assert " tests notebooks" in _readme_line(r"^LSR_PROFILE=smoke python -m pytest ")


def test_the_readme_install_line_installs_what_the_tests_and_notebooks_import():
    """Every third-party package a test or notebook imports is installed by the README's install line (its extras,
    as pyproject.toml lists them): the suite must not fail on a fresh machine that followed the README."""
    import ast
    import importlib.metadata as md
    import json
    import sys

    line = _readme_line(r'^pip install -e "\.\[')
    extras = re.search(r"\[([^\]]+)\]", line).group(1).split(",")
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {re.split(r"[<>=!~\[ ]", r)[0].lower().replace("_", "-") for r in proj["dependencies"]}
    for extra in extras:
        installed |= {re.split(r"[<>=!~\[ ]", r)[0].lower().replace("_", "-")
                      for r in proj["optional-dependencies"][extra]}
    sources = [p.read_text() for p in (ROOT / "tests").glob("*.py")]
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        sources += ["\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
                    for c in cells if c["cell_type"] == "code"]
    top = set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                top |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                top.add(node.module.split(".")[0])
    import importlib.util

    ours = {"lsr_utils", "benchmarks", "conftest"}
    dists = md.packages_distributions()
    missing = sorted(f"{m} (not installed at all)" for m in top - ours - set(sys.stdlib_module_names)
                     if importlib.util.find_spec(m) is None)
    missing += sorted(f"{m} ({', '.join(dists[m])})" for m in top - ours - set(sys.stdlib_module_names)
                      if m in dists and not {d.lower().replace("_", "-") for d in dists[m]} & installed
                      and not _required_by(dists[m], installed))
    assert not missing, f"imported by the tests or notebooks but not installed by `{line}`: {missing}"


def _required_by(dist_names, installed: set) -> bool:
    """Whether one of ``dist_names`` is brought in by a package the install line names (a dependency of it)."""
    import importlib.metadata as md

    want = {d.lower().replace("_", "-") for d in dist_names}
    seen, todo = set(), list(installed)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" in r:
                continue
            dep = re.split(r"[<>=!~\[ ;(]", r)[0].lower().replace("_", "-")
            if dep in want:
                return True
            todo.append(dep)
    return False
