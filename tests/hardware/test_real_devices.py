"""A tiny real run per provider: real QPUs, real money. Deselected by default (``-m hardware``).

Run with credentials in place:  pytest -m hardware tests/hardware
Each test runs ``qflhw run`` on a one-step, one-round spec (one qubit, 5 circuits x 10 shots) in
a scratch copy of ``backends/`` and ``calibration/`` (QFLHW_DATA), so the live snapshot it saves
does not land in the checkout. Caps:

* Braket (default ``iqm_garnet``, $0.30 per task + $0.00145 per shot): about $0.37, cap $0.99.
* IBM (default ``ibm_kingston``; ``ibm_torino`` is retired): the ledger prices a job at >= 2 s of
  QPU time ($3.20 at the pay-as-you-go $1.60/s), so a cap below $1 would refuse every IBM job; the
  cap defaults to $3.50 (QFLHW_HW_IBM_MAX_USD). On the free Open Plan nothing is billed.

Before spending, each test rehearses the same spec on the profile's ``_emulated`` twin (offline)
and checks the estimate; after the run it checks that the ledger never crossed the cap, that
exactly one provider job was journaled for the step, and that the provider-reported cost was
recorded next to the estimate.

Choose other devices with QFLHW_HW_IBM_PROFILE / QFLHW_HW_BRAKET_PROFILE (IonQ Forte costs about
$4.30 for this run: raise QFLHW_HW_BRAKET_MAX_USD knowingly).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hardware

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
name = "hw-{provider}"
seed = 1
rounds = 1

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 1

[model]
qubits = 1
layers = 1
ansatz = "hardware-efficient"

[training]
batch_size = 1
shots = 10

[budget]
max_usd = {cap}

[[clients]]
name = "qpu"
device = "{profile}"
"""


def _has_ibm_account() -> bool:
    if os.environ.get("QISKIT_IBM_TOKEN"):
        return True
    return (Path.home() / ".qiskit" / "qiskit-ibm.json").is_file()


def _has_aws_credentials() -> bool:
    try:
        import boto3

        return boto3.Session().get_credentials() is not None
    except Exception:  # noqa: BLE001
        return False


def _run(tmp_path: Path, provider: str, profile: str, cap: float) -> dict:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "backends", data / "backends")
    shutil.copytree(ROOT / "calibration", data / "calibration")
    env = {**os.environ, "QFLHW_DATA": str(data)}
    rehearsal = tmp_path / "rehearsal.toml"  # the same step through the provider's local mode first
    rehearsal.write_text(SPEC.format(provider=provider, profile=f"{profile}_emulated", cap=cap))
    reh = subprocess.run([sys.executable, "-m", "qflhw.cli", "run", str(rehearsal), "--out", str(tmp_path / "reh"),
                          "--quiet"], env=env, capture_output=True, text=True, timeout=1800)
    assert reh.returncode == 0, reh.stderr[-2000:]
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(provider=provider, profile=profile, cap=cap))
    est = subprocess.run([sys.executable, "-m", "qflhw.cli", "estimate", str(spec), "--json"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert est.returncode == 0, est.stderr
    assert float(json.loads(est.stdout)["total"]["usd"]) <= cap
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "qflhw.cli", "run", str(spec), "--out", str(out), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=4 * 3600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_jobs"] == 1 and summary["total_cost_usd"] <= cap
    assert summary["clients"]["qpu"]["rounds_ok"] == 1
    assert summary["clients"]["qpu"]["emulated"] is False
    actual = summary["clients"]["qpu"]["actual_cost_usd"]
    assert actual is None or actual <= cap  # what the provider reported, next to the estimate
    import sqlite3

    with sqlite3.connect(out / "journal.sqlite") as db:
        rows = db.execute("SELECT key, job_id FROM submissions").fetchall()
    assert len(rows) == 1 and rows[0][1]  # one step, one provider job, journaled
    live = [p for p in (data / "calibration").rglob("*.json") if json.loads(p.read_text())["provenance"]["kind"] == "live"]
    assert live, "the live calibration was not saved as a snapshot"
    return summary


def test_ibm_tiny_real_run(tmp_path):
    if not _has_ibm_account():
        pytest.skip("no IBM Quantum account (saved, or QISKIT_IBM_TOKEN + QISKIT_IBM_INSTANCE)")
    _run(tmp_path, "ibm", os.environ.get("QFLHW_HW_IBM_PROFILE", "ibm_kingston"),
         float(os.environ.get("QFLHW_HW_IBM_MAX_USD", "3.50")))


def test_braket_tiny_real_run(tmp_path):
    if not _has_aws_credentials():
        pytest.skip("no AWS credentials in the standard chain")
    _run(tmp_path, "braket", os.environ.get("QFLHW_HW_BRAKET_PROFILE", "iqm_garnet"),
         float(os.environ.get("QFLHW_HW_BRAKET_MAX_USD", "0.99")))
