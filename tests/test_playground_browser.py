"""The playground in a real browser: JupyterLab on 127.0.0.1 and Debian's Chromium, headless,
driven by Playwright (which launches the system's chromium: no browser download).

The test opens a copy of notebooks/07_playground.ipynb, runs all cells, moves the epochs slider
to 1, clicks Train and waits until the curves and the runs table change; it saves a screenshot
under its tmp_path (the path is printed) and stops the server it started. Skipped where Chromium
or the dataset is missing, except that HW3_REQUIRE_PDF=1 (CI, which needs Chromium for the report
too) turns a missing Chromium into a failure.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import missing

from hw3lib.export import find_chromium

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_playground.ipynb"
DATA = Path(os.environ.get("HW3_DATA", ROOT / "data"))
HAVE_DATA = (DATA / "Data_train").is_dir() and (DATA / "Data_test").is_dir()
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Every wait is bounded: the server gets SERVER_START_S to answer, then all the browser's waits
# share BROWSER_BUDGET_S; stopping the server takes at most 20 s. A run takes about 15 s.
SERVER_START_S = 20
BROWSER_BUDGET_S = 80


@pytest.fixture
def chromium():
    path = find_chromium()
    if path is None:
        missing("Chromium not found (apt-get install chromium)", "HW3_REQUIRE_PDF")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of the playground notebook, with its own
    settings (no news notifications), runtime and workspace folders; ``(base URL, token)``.
    Stopped, with its kernels, by killing its process group."""
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "HW3_DATA": str(DATA.resolve()),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "IPYTHONDIR": str(tmp_path / "ipython")}
    env.pop("MPLBACKEND", None)
    log_path = tmp_path / "jupyter-lab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--allow-root"],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, f"jupyter lab exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"jupyter lab did not answer: {log_path.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.mark.skipif(not HAVE_DATA, reason=f"real dataset not found at {DATA}: set HW3_DATA")
def test_the_playground_trains_in_jupyterlab(lab, chromium, tmp_path):
    base, token = lab
    screenshot = tmp_path / "playground.png"
    deadline = time.monotonic() + BROWSER_BUDGET_S

    def left():
        """Milliseconds left for the next wait: all of them share the budget."""
        ms = (deadline - time.monotonic()) * 1000
        assert ms > 0, f"the browser part took longer than {BROWSER_BUDGET_S} s"
        return ms

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=left())
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{base}/lab/tree/07_playground.ipynb?token={token}", timeout=left())
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=left())
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=left())
            page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click(timeout=left())

            panel = page.locator(".hw3-playground")
            expect(panel.locator(".hw3-runs")).to_contain_text("No runs yet", timeout=left())
            curves = panel.locator(".hw3-curves")
            expect(curves).to_have_attribute("src", re.compile("."), timeout=left())
            before = curves.get_attribute("src", timeout=left())

            epochs = panel.locator(".widget-slider", has=page.locator("label", has_text=re.compile("^epochs$")))
            epochs.locator(".noUi-handle").click(timeout=left())
            for _ in range(2):  # 3 -> 1
                page.keyboard.press("ArrowLeft")
            expect(epochs.locator(".widget-readout")).to_have_text("1", timeout=left())

            panel.get_by_role("button", name="Train").click(timeout=left())
            runs = re.compile(r"^\s*1\s+AdamGD .* 1/1 .*done$", re.M)
            expect(panel.locator(".hw3-runs pre")).to_contain_text(runs, timeout=left())
            expect(panel.locator(".hw3-message")).to_contain_text("Run 1 done after 1 epoch(s)", timeout=left())
            assert curves.get_attribute("src", timeout=left()) != before

            panel.get_by_role("button", name="Sweep lr").click(timeout=left())  # worker processes
            expect(panel.locator(".hw3-message")).to_contain_text("Sweep done", timeout=left())
            expect(panel.locator(".hw3-sweep pre")).to_contain_text(re.compile(r"2 done\n[^\n]*2 done\n[^\n]*2 done"),
                                                                    timeout=left())
            panel.screenshot(path=screenshot, timeout=left())
        finally:
            browser.close()
    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
