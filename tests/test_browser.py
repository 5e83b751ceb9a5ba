"""The latent explorer as a user meets it: JupyterLab in headless Chromium, checked from the page.

1. A fresh JupyterLab (its own runtime, config and settings folders) on 127.0.0.1 opens a copy of
   ``notebooks/07_latent_explorer.ipynb``, runs it in the smoke profile, and the test moves a latent
   slider, presses "random z", changes the image and the run, asserting from the page (image sources,
   slider readouts, the "rendered from" line) that the right panels changed, the others did not, the
   sliders equal the z that was rendered, a run switch shows its busy state, and opening the notebook
   left its file unchanged.
2. The committed ``07`` opened untrusted, and its HTML export read offline, show the explorer's last state
   (the static snapshot).

It needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package (``.ci/run`` installs
both). Under CI (``$CI`` set) a missing or broken browser fails the test, saying why; elsewhere a machine without
Chromium skips it with the command that installs it (the rest of the suite does not need a browser).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LSR_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UNDER_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _missing(what: str):
    """Under CI the browser test must run (fail, saying why); elsewhere it skips, saying how to install it."""
    (pytest.fail if UNDER_CI else pytest.skip)(what)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the browser test needs the playwright package: pip install -e '.[dev]' (.ci/run installs it)")
    if not Path(CHROMIUM).is_file():
        _missing(f"the browser test needs Chromium at {CHROMIUM}: sudo apt-get install chromium (or set "
                 f"LSR_CHROMIUM to a Chromium binary); .ci/run installs it")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        except Exception as e:  # a browser that cannot start fails the test loudly
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {e}")
        yield b
        b.close()


class Lab:
    """A JupyterLab server of its own, serving ``folder``."""

    def __init__(self, folder: Path, tmp: Path):
        self.port, self.token, self.folder = _free_port(), "lsr-test-token", folder
        env = dict(os.environ, LSR_PROFILE="smoke", LSR_PROGRESS="0", JUPYTER_RUNTIME_DIR=str(tmp / "rt"),
                   JUPYTER_CONFIG_DIR=str(tmp / "cfg"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"), LSR_CACHE=str(tmp / "cache"))
        self.log = open(tmp / "lab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={folder}",
             "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=True",
             "--allow-root",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        self.stop()
        pytest.fail(f"JupyterLab did not start; its log: {(tmp / 'lab.log').read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self, page, name: str):
        page.goto(f"{self.url}/lab/tree/{name}?token={self.token}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=60_000)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _srcs(page) -> dict:
    """The source of every panel's image, by panel (the samples strip as one entry)."""
    return page.evaluate("""() => {
        const out = {};
        for (const c of ['lsr-input', 'lsr-vae', 'lsr-gan', 'lsr-cur-vae', 'lsr-cur-gan', 'lsr-interp-vae',
                         'lsr-interp-gan']) {
            const img = document.querySelector('img.' + c);
            out[c] = img ? img.src : null;
        }
        out['lsr-samples'] = Array.from(document.querySelectorAll('img.lsr-samples')).map(i => i.src).join(' ');
        return out;
    }""")


def _sliders_and_rendered(page) -> tuple[dict, dict]:
    """(slider readouts by dimension, rendered z by dimension), both read off the page."""
    return page.evaluate("""() => {
        const sliders = {}, rendered = {};
        for (const s of document.querySelectorAll('.lsr-slider')) {
            const dim = s.querySelector('.widget-label').textContent.trim();
            const readout = s.querySelector('.widget-readout');
            sliders[dim] = (readout.value !== undefined && readout.value !== '') ? readout.value
                                                                               : readout.textContent.trim();
        }
        for (const z of document.querySelectorAll('.lsr-rendered-z .lsr-z')) {
            const [dim, v] = z.textContent.split('=');
            rendered[dim.trim()] = v.trim();
        }
        for (const k in sliders) sliders[k] = sliders[k].replace('\u2212', '-');  // the readout's minus sign
        return [sliders, rendered];
    }""")


def _changed(a: dict, b: dict) -> set:
    return {k for k in a if a[k] != b[k]}


def _settle(page, before: dict, must_change: str, timeout_s: float = 30.0) -> dict:
    """Wait until panel ``must_change`` has a new image and the page stops changing; return the sources."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = _srcs(page)
        if now[must_change] != before[must_change]:
            page.wait_for_timeout(700)  # let the other updates of the same action arrive
            later = _srcs(page)
            if later == now:
                return now
        page.wait_for_timeout(100)
    raise AssertionError(f"{must_change} never changed")


def test_explorer_in_jupyterlab(browser, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    nb = work / "07_latent_explorer.ipynb"
    shutil.copy(ROOT / "notebooks" / "07_latent_explorer.ipynb", nb)
    lab = Lab(work, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        lab.open(page, nb.name)
        page.wait_for_timeout(3000)
        opened = nb.read_bytes()
        page.keyboard.press("Control+s")  # what JupyterLab writes on saving an opened notebook ...
        page.wait_for_timeout(1500)
        assert json.loads(nb.read_bytes())["metadata"]["kernelspec"] == json.loads(opened)["metadata"]["kernelspec"], \
            "opening and saving the notebook rewrote its kernelspec"
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector("img.lsr-cur-gan[src]", timeout=150_000)
        page.wait_for_function("() => document.body.innerText.includes('shown run:')", timeout=150_000)
        page.wait_for_timeout(2000)
        assert "Untrained models" in page.inner_text(".lsr-warning")  # smoke runs say so
        s0 = _srcs(page)
        assert all(s0.values()), s0
        sliders, rendered = _sliders_and_rendered(page)
        assert sliders and sliders == rendered, (sliders, rendered)

        # (1) a latent slider: only the two current-z panels change
        handle = page.locator(".lsr-slider .noUi-handle").first
        handle.focus()
        for _ in range(30):
            page.keyboard.press("ArrowRight")
        s1 = _settle(page, s0, "lsr-cur-gan")
        assert _changed(s0, s1) == {"lsr-cur-vae", "lsr-cur-gan"}, _changed(s0, s1)
        sliders, rendered = _sliders_and_rendered(page)
        assert sliders == rendered, (sliders, rendered)

        # (2) random z: the current-z panels change, the sliders equal the z that was rendered
        page.click(".lsr-random-z")
        s2 = _settle(page, s1, "lsr-cur-gan")
        assert _changed(s1, s2) == {"lsr-cur-vae", "lsr-cur-gan"}, _changed(s1, s2)
        sliders, rendered = _sliders_and_rendered(page)
        assert sliders == rendered, (sliders, rendered)
        page.wait_for_timeout(1500)
        assert _srcs(page) == s2  # one redraw per action: nothing echoed back

        # (3) another image: its input and renderings change, the interpolation does not
        page.fill(".lsr-index input", "5")
        page.keyboard.press("Enter")
        s3 = _settle(page, s2, "lsr-input")
        assert {"lsr-input", "lsr-vae", "lsr-gan", "lsr-samples"} <= _changed(s2, s3)
        assert not {"lsr-interp-vae", "lsr-interp-gan"} & _changed(s2, s3)
        sliders, rendered = _sliders_and_rendered(page)
        assert sliders == rendered

        # (4) another run: a busy state while it loads, then that run's images under its label
        page.evaluate("""() => { window.__lsrBusy = false;
            new MutationObserver(() => { if (document.querySelector('.lsr-loading')) window.__lsrBusy = true; })
                .observe(document.body, {subtree: true, childList: true, attributes: true}); }""")
        page.select_option(".lsr-run select", index=1)
        s4 = _settle(page, s3, "lsr-gan")
        assert page.evaluate("() => window.__lsrBusy"), "no busy indicator while the run loaded"
        assert "lambda=10" in page.locator(".lsr-run select option:checked").inner_text()
        assert {"lsr-gan", "lsr-cur-gan", "lsr-interp-gan"} <= _changed(s3, s4)
        assert not {"lsr-input"} & _changed(s3, s4)  # the same image, another run
        assert page.locator(".lsr-loading").count() == 0
    finally:
        lab.stop()


def test_committed_explorer_shows_its_last_state_untrusted_and_offline(browser, tmp_path):
    committed = ROOT / "notebooks" / "07_latent_explorer.ipynb"
    snaps = [o for c in json.loads(committed.read_text())["cells"] for o in c.get("outputs", [])
             if "image/png" in o.get("data", {}) and "Latent explorer, last state" in
             "".join(o["data"].get("text/plain", ""))]
    assert snaps, "the committed 07 holds no snapshot of the explorer (run it in the quick profile and commit it)"
    src = "data:image/png;base64," + "".join(snaps[-1]["data"]["image/png"]).replace("\n", "")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(committed, work / committed.name)
    lab = Lab(work, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        lab.open(page, committed.name)  # a fresh server: the notebook is not trusted
        img = page.locator(f"img[src^='{src[:200]}']")  # JupyterLab draws a PNG output as <img src="data:...">
        img.first.wait_for(timeout=30_000)
        assert page.evaluate("(i) => i.naturalWidth > 100 && i.offsetHeight > 20", img.first.element_handle())
    finally:
        lab.stop()
    # its HTML export, read offline: nothing may be fetched, the snapshot is still there
    html = tmp_path / "07.html"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(work / committed.name),
                    "--output", str(html)], check=True, capture_output=True)
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else route.abort())
    page.goto(html.as_uri())
    imgs = page.locator(f"img[src^='{src[:200]}']")
    assert imgs.count() >= 1, "the exported page has no snapshot of the explorer"
    assert page.evaluate("(i) => i.naturalWidth > 100", imgs.first.element_handle())
