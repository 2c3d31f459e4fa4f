"""Secrets stay secret: planted credentials appear in no file a run writes, nor in its output."""

from __future__ import annotations

import os
import subprocess
import sys

SECRETS = {
    "QISKIT_IBM_TOKEN": "ibmtok-PLANTED-5f1c9e",
    "QISKIT_IBM_INSTANCE": "crn:v1:PLANTED-instance-77",
    "AWS_ACCESS_KEY_ID": "AKIAPLANTED000000001",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-PLANTED-9d2b",
    "AWS_SESSION_TOKEN": "aws-session-PLANTED-4e4e",
}


def test_planted_tokens_are_in_no_file_the_run_wrote(tmp_path, tiny_spec_text):
    spec = tmp_path / "spec.toml"
    spec.write_text(tiny_spec_text.replace("rounds = 2", "rounds = 1"))
    out = tmp_path / "run"
    env = {**os.environ, **SECRETS}
    tb = tmp_path / "tb"
    proc = subprocess.run(  # -vv: every event is also a log line on stderr
        [sys.executable, "-m", "qflhw.cli", "-vv", "run", str(spec), "--out", str(out), "--tensorboard", str(tb)],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"sent job" in proc.stderr and b"round 0 done" in proc.stderr
    watch = subprocess.run([sys.executable, "-m", "qflhw.cli", "watch", str(out), "--once"], env=env, capture_output=True, timeout=120)
    assert watch.returncode == 0
    files = [p for p in [*out.rglob("*"), *tb.rglob("*")] if p.is_file()]
    assert any(p.name == "journal.sqlite" for p in files) and any(p.name == "events.jsonl" for p in files) and len(files) >= 7
    blobs = [p.read_bytes() for p in files] + [proc.stdout, proc.stderr, watch.stdout, watch.stderr]
    for name, value in SECRETS.items():
        for blob in blobs:
            assert value.encode() not in blob, f"{name} leaked"
