"""The dashboard in a real headless browser (Debian's chromium + chromedriver, driven by selenium).

`qflhw dashboard RUNS` runs as a subprocess. The page lists the runs, its learning curve holds
exactly the numbers of ``metrics.csv`` (read here with the csv module), the form starts a run on
fake devices that appears live with its first round, two runs show side by side, and nothing
outside RUNS_DIR is ever served: ``..`` in every spelling, a symlink out of the folder, NiceGUI's
own static route. Planted credentials appear on no page.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from qflhw.cli import main

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--window-size=1400,1000"]  # fmt: skip
SECRET_FILE = "TOP SECRET beside the runs folder"
TOKEN = "ibmtok-PLANTED-dash-4242"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_spec_module):
    base = tmp_path_factory.mktemp("dash")
    runs = base / "runs"
    assert main(["run", str(tiny_spec_module), "--out", str(runs / "first"), "--quiet"]) == 0
    (base / "secret.txt").write_text(SECRET_FILE)
    outside = base / "outside"
    shutil.copytree(runs / "first", outside / "run")  # a real run dir, but not under RUNS
    (outside / "secret.txt").write_text(SECRET_FILE)
    (runs / "escape").symlink_to(outside, target_is_directory=True)
    return runs


@pytest.fixture(scope="module")
def tiny_spec_module(tmp_path_factory):
    from tests.helpers import TINY_SPEC

    path = tmp_path_factory.mktemp("spec") / "tiny.toml"
    path.write_text(TINY_SPEC)
    return path


@pytest.fixture(scope="module")
def server(runs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # NiceGUI takes PYTEST_CURRENT_TEST to mean its own test mode and would not serve
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} | {"QISKIT_IBM_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "qflhw.cli", "dashboard", str(runs), "--port", str(port)], env=env,
                            cwd=runs.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the dashboard did not start: {proc.stdout.read().decode()[-2000:] if proc.stdout else ''}")
            time.sleep(0.2)
    yield url, port
    proc.terminate()
    proc.wait(20)


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), (
        "the browser tests need Debian's chromium and chromium-driver: .ci/run installs them "
        "(apt-get install -y chromium chromium-driver)"
    )
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)  # the driver given: nothing is downloaded
    yield d
    d.quit()


def _wait(driver, seconds=60):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # NiceGUI re-renders elements as they update: a found element may be replaced under us
    return WebDriverWait(driver, seconds, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException,
                                                                                 NoSuchElementException])


def _by(driver, testid):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def _click(driver, testid) -> None:
    """Click an element, finding it again if a re-render replaced it between find and click."""

    def attempt(d) -> bool:  # noqa: ANN001
        _by(d, testid).click()
        return True

    _wait(driver).until(attempt)


def _series(driver, testid) -> dict[str, list]:
    """The data the chart on the page actually holds, from its ECharts instance."""
    element_id = int(_by(driver, testid).get_attribute("id").lstrip("c"))
    got = driver.execute_script(
        "return getElement(arguments[0]).chart.getOption().series.map(s => [s.name, s.data]);", element_id
    )
    return {name: [tuple(p) for p in data] for name, data in got}


def _metrics_csv(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _curve_from_csv(rows: list[dict]) -> dict[str, list]:
    acc = {int(r["round"]): float(r["global_test_accuracy"]) for r in rows}
    out = {"test accuracy": sorted(acc.items())}
    for client in sorted({r["client"] for r in rows}):
        out[f"loss {client}"] = [(int(r["round"]), float(r["loss"])) for r in rows if r["client"] == client]
    return out


def _get(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=10).read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.read().decode(errors="replace")


def test_binds_this_machine_only(server):
    _, port = server
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    assert {line.split()[3] for line in out.splitlines()} == {f"127.0.0.1:{port}"}, out


@pytest.mark.parametrize("path", [
    "/run/..", "/run/%2e%2e", "/run/..%2fsecret.txt", "/run/%2e%2e%2fsecret.txt", "/../secret.txt", "/run/escape",
    "/run/escape/run", "/run/escape/secret.txt", "/run/first/../../secret.txt", "/compare?a=escape/run&b=first",
    "/_nicegui/3.18.0/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/run/.dashboard",
])  # fmt: skip
def test_nothing_outside_the_runs_folder_is_served(server, path):
    url, _ = server
    body = _get(url + path)
    assert SECRET_FILE not in body and "root:x:0:0" not in body
    if path.startswith(("/run/", "/compare")):
        assert 'not-found' in body  # the page refused the name, it did not show a run


def test_lists_runs_and_the_curve_holds_the_metrics(server, driver, runs):
    url, _ = server
    driver.get(url)
    _wait(driver).until(lambda d: _by(d, "run-link-first").text == "first")
    assert _by(driver, "run-count").text == "1 run"  # the symlink out of the folder is not a run here
    _click(driver, "run-link-first")
    _wait(driver).until(lambda d: d.current_url.endswith("/run/first") and "finished" in _by(d, "status").text)
    expected = _curve_from_csv(_metrics_csv(runs / "first"))
    shown = _series(driver, "curve")
    assert {k: shown[k] for k in expected} == expected
    assert "rounds done 2 of 2" in _by(driver, "status").text
    assert "fake_fez" in _by(driver, "clients").text and "fake_kyiv" in _by(driver, "clients").text
    assert TOKEN not in driver.page_source


def test_the_form_starts_a_fake_run_that_appears_live(server, driver, runs):
    from selenium.webdriver.common.keys import Keys

    url, _ = server
    driver.get(url)
    _wait(driver).until(lambda d: _by(d, "start").is_displayed())
    for testid, value in (("f-name", "formrun"), ("f-rounds", "2"), ("f-rows", "8")):
        box = _by(driver, testid)  # Quasar puts the attribute on the <input> itself
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value, Keys.TAB)
    _click(driver, "start")
    _wait(driver).until(lambda d: "/run/formrun-" in d.current_url)
    name = driver.current_url.rsplit("/run/", 1)[1]
    # its first round shows up while it runs, with the numbers it wrote
    _wait(driver, 180).until(lambda d: len(_series(d, "curve").get("test accuracy", [])) >= 1)
    shown = _series(driver, "curve")["test accuracy"]
    expected = _curve_from_csv(_metrics_csv(runs / name))["test accuracy"]
    assert shown[0] == expected[0]
    _wait(driver, 180).until(lambda d: "finished: rounds done 2 of 2" in _by(d, "status").text)
    assert _series(driver, "curve")["test accuracy"] == _curve_from_csv(_metrics_csv(runs / name))["test accuracy"]
    spec = (runs / name / "spec.json").read_text()
    assert '"fake_' in spec and '"max_usd": 0.0' in spec  # fake devices, no budget for anything else
    # two runs side by side
    driver.get(f"{url}/compare?a=first&b={name}")
    _wait(driver).until(lambda d: "finished" in _by(d, f"status-{name}").text and "finished" in _by(d, "status-first").text)
    assert _series(driver, "curve-first")["test accuracy"] == _curve_from_csv(_metrics_csv(runs / "first"))["test accuracy"]
    assert TOKEN not in driver.page_source
