"""Flower: the same spec run in-process, in Flower's simulation engine and through a real SuperLink
with one SuperNode per client (loopback, separate processes) gives the same final parameters, and
a SuperNode killed mid-run is a dropout recorded like any other.

The expected values come from the in-process run, an independent path: no Flower, no network,
clients trained in threads. Every process a test starts is stopped in a fixture finalizer.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from qflhw.cli import main
from qflhw.flower import require_flwr

require_flwr()  # Flower is a test dependency (CI installs .[test]): these tests must run, not skip

CLIENTS = ("a", "b")


def _spec_text() -> str:
    from tests.helpers import TINY_SPEC

    return TINY_SPEC.replace("shots = 200", "shots = 100")  # 2 qubits, 1 layer, 2 rounds, 8 rows, fake_fez/fake_kyiv


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _rows(run_dir: Path) -> list[dict]:
    """metrics.csv without what legitimately differs between engines (job ids, wall time)."""
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in ("job_ids", "seconds")} for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.toml"
    path.write_text(_spec_text())
    return path


@pytest.fixture(scope="module")
def inprocess(spec_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inprocess") / "run"
    assert main(["run", str(spec_path), "--out", str(out), "--quiet"]) == 0
    return out


# ------------------------------------------------------------------------------- fast pieces
def test_records_carry_parameters_and_money_exactly():
    from qflhw.execution.budget import Cost
    from qflhw.flower.records import Instruction, Report
    from qflhw.training.client import ClientResult

    params = np.array([0.1, -1 / 3, np.pi, 1e-300])
    ins = Instruction.read(Instruction(params, 4, ("a", "c"), "abc").content())
    np.testing.assert_array_equal(ins.params, params)
    assert (ins.round, ins.selected, ins.digest) == (4, ("a", "c"), "abc")
    res = ClientResult(
        client="a", device="fake_fez", round=4, params=params, num_samples=8, loss=0.5, steps=2,
        cost=Cost(Decimal("0.300001"), 2, 3400, 1.5), esp=0.9, variance=0.01, calibration_id="x#1", job_ids=["j1", "j2"],
    )
    back = Report.read(Report(res, "trained", Cost(Decimal("0.600002"), 4, 6800, 3.0), {"esp": 0.9}).content())
    np.testing.assert_array_equal(back.result.params, params)
    assert back.result.cost == res.cost and back.billed.usd == Decimal("0.600002")
    assert (back.result.job_ids, back.status, back.facts) == (["j1", "j2"], "trained", {"esp": 0.9})
    res.params, res.error = None, "JobFailed: device offline"
    dropped = Report.read(Report(res, "dropped").content())
    assert dropped.result.params is None and dropped.result.error == "JobFailed: device offline"


def test_spec_digest_covers_what_sites_must_share(tmp_path):
    import tomllib

    from qflhw.config.spec import parse_spec
    from qflhw.flower.records import spec_digest

    raw = tomllib.loads(_spec_text())
    base = spec_digest(parse_spec(raw))
    other_device = dict(raw, clients=[dict(raw["clients"][0], device="fake_kyiv"), raw["clients"][1]])
    assert spec_digest(parse_spec(other_device)) == base  # a site may use another device
    assert spec_digest(parse_spec(dict(raw, seed=4))) != base
    assert spec_digest(parse_spec(dict(raw, training=dict(raw["training"], learning_rate=0.2)))) != base


class ScriptedGrid:
    """A Flower Grid whose SuperNodes answer from a script: ``script[node](instruction) -> reply or None``."""

    def __init__(self, script):
        self.script, self.replies = script, {}

    def get_node_ids(self):
        return list(self.script)

    def push_messages(self, messages):
        from uuid import uuid4

        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = mid = uuid4().hex
            reply = self.script[msg.metadata.dst_node_id](msg)
            if reply is not None:
                self.replies[mid] = reply
            ids.append(mid)
        return ids

    def pull_messages(self, ids):
        return [self.replies.pop(i) for i in list(ids) if i in self.replies]


@pytest.mark.parametrize(
    ("method", "esp_a", "first_move"),
    [
        ("fedavg", 1.0, (8 * 1 + 8 * 3) / 16),  # 8 samples each: the mean of +1 and +3
        ("noise-aware", 0.5, (8 * 0.5 * 1 + 8 * 1.0 * 3) / (8 * 0.5 + 8 * 1.0)),  # weights samples x ESP
    ],
)
def test_server_records_failed_malformed_and_silent_sites_as_dropouts(tmp_path, monkeypatch, method, esp_a, first_move):
    """Round 0 both sites train (a moves +1 with ``esp_a``, b +3 with ESP 1); round 1 one ClientApp
    raises and one report is garbage (nothing moves); round 2 only site a answers (+1)."""
    import tomllib

    from flwr.app import Error, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from qflhw.config.spec import parse_spec
    from qflhw.flower.records import Instruction, Report
    from qflhw.flower.server import FlowerFederation
    from qflhw.training.client import ClientResult

    text = _spec_text().replace("rounds = 2", "rounds = 3") + f'\n[aggregation]\nmethod = "{method}"\n'
    spec = parse_spec(tomllib.loads(text))
    for key in ("_run_id", "_task_id", "_node_id"):  # what a ServerApp process has; Messages need it
        monkeypatch.setattr(TaskIdentity, key, 1)

    def site(name, shift, esp, plan):
        def answer(msg):
            ins = Instruction.read(msg.content)
            what = plan[ins.round]
            if what == "train":
                res = ClientResult(
                    client=name, device="fake_x", round=ins.round, params=ins.params + shift, num_samples=8, loss=0.5,
                    esp=esp,
                )
                return Message(Report(res, "trained", facts={"device": "fake_x"}).content(), reply_to=msg)
            if what == "raise":
                return Message(Error(code=0, reason="ValueError: boom"), reply_to=msg)
            if what == "garbage":
                return Message(RecordDict({}), reply_to=msg)
            return None  # silent

        return answer

    grid = ScriptedGrid(
        {11: site("a", 1.0, esp_a, ["train", "raise", "train"]), 12: site("b", 3.0, 1.0, ["train", "garbage", "silent"])}
    )
    fed = FlowerFederation(spec, tmp_path / "run", grid, round_timeout=0.5, wait_for_nodes=0, poll_seconds=0.05)
    start = fed.params.copy()
    summary = fed.run()
    np.testing.assert_allclose(summary["final_parameters"], start + first_move + 1.0, rtol=0, atol=1e-12)
    status = [(r["round"], r["client"], r["status"]) for r in fed.rows]
    assert status == [(0, "a", "ok"), (0, "b", "ok"), (1, "a", "dropped"), (1, "b", "dropped"), (2, "a", "ok"), (2, "b", "dropped")]
    errors = [r["error"] for r in fed.rows if r["status"] == "dropped"]
    assert "ClientApp failed" in errors[0] and "boom" in errors[0]
    assert "malformed" in errors[1]
    assert "no reply within round_timeout=0.5s" in errors[2]
    assert summary["clients"]["b"]["rounds_ok"] == 1 and summary["clients"]["a"]["device"] == "fake_x"


def test_importing_qflhw_does_not_import_flower():
    code = (
        "import sys, qflhw, qflhw.cli, qflhw.federation.loop; qflhw.cli.build_parser(); "
        "print(any(m.split('.')[0] == 'flwr' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------- (a) simulation
def test_simulation_engine_gives_the_inprocess_parameters(spec_path, inprocess, tmp_path):
    out = tmp_path / "sim"
    proc = subprocess.Popen(  # its own process group: Ray's workers go with it if it hangs
        [sys.executable, "-m", "qflhw.cli", "run", str(spec_path), "--engine", "flower-sim", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, log[-4000:]
    np.testing.assert_array_equal(_summary(out)["final_parameters"], _summary(inprocess)["final_parameters"])
    assert _rows(out) == _rows(inprocess)
    assert {k: v for k, v in _summary(out).items() if k not in ("run_id", "wall_seconds")} == {
        k: v for k, v in _summary(inprocess).items() if k not in ("run_id", "wall_seconds")
    }


def test_personal_parameters_never_reach_the_server_in_flower_sim(tmp_path):
    """``local-head``: the sites' own heads appear in no file the server side writes (journal,
    metrics, summary, plot), and training gives the in-process parameters bit for bit."""
    import struct

    from qflhw.config.spec import load_spec
    from qflhw.federation.loop import Federation

    spec = tmp_path / "local-head.toml"
    spec.write_text(_spec_text() + '\n[personalization]\nmethod = "local-head"\n')
    fed = Federation(load_spec(spec), tmp_path / "inprocess", progress=False)
    expected = fed.run()
    personal = np.concatenate([c.personal.values for c in fed.clients])
    init = fed.assembly.global_model().get_flat()[fed.assembly.split.local]
    assert len(personal) == 2 * len(init) and not np.isin(personal, init).any()
    out = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qflhw.cli", "run", str(spec), "--engine", "flower-sim", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, log[-4000:]
    assert _summary(out)["final_parameters"] == expected["final_parameters"]
    assert _summary(out)["client_test"] == expected["client_test"]  # the sites scored their own heads
    server_files = [f for f in out.rglob("*") if f.is_file() and "sites" not in f.relative_to(out).parts]
    assert {f.name for f in server_files} >= {"journal.sqlite", "metrics.csv", "summary.json"}
    blob = b"".join(f.read_bytes() for f in server_files)
    for v in personal:
        assert struct.pack("<d", v) not in blob and struct.pack(">d", v) not in blob
        assert repr(float(v)).encode() not in blob


# ------------------------------------------------------------------------------- (b), (c) deployment
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A SuperLink and one SuperNode per client on loopback, each a process group of its own."""

    def __init__(self, root: Path, spec: Path):
        from qflhw.flower.deploy import flower_env

        self.root, self.spec = root, spec
        self.link_port = _free_port()
        self.node_ports = {c: _free_port() for c in CLIENTS}
        home = root / "flwr-home"  # Flower's config and installed apps, away from ~/.flwr
        home.mkdir()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "loop"\n\n[superlink.loop]\naddress = "127.0.0.1:{self.link_port}"\ninsecure = true\n'
        )
        self.env = flower_env(dict(os.environ, FLWR_HOME=str(home), PYTHONUNBUFFERED="1"))
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "qflhw.cli", "flower", *args], stdout=log, stderr=subprocess.STDOUT,
            env=self.env, start_new_session=True,
        )

    def start(self) -> None:
        self._start("superlink", "superlink", "--insecure", "--port", str(self.link_port))
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.link_port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert self.procs["superlink"].poll() is None and time.monotonic() < deadline, self.logs()
            time.sleep(0.5)
        for c in CLIENTS:
            self._start(
                f"supernode-{c}", "supernode", str(self.spec), "--client", c, "--insecure",
                "--superlink", f"127.0.0.1:{self.link_port}", "--port", str(self.node_ports[c]),
                "--dir", str(self.root / "sites"),
            )

    def submit(self, out: Path, *, round_timeout: float) -> subprocess.Popen:
        log = open(self.root / f"run-{out.name}.log", "w")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "qflhw.cli", "flower", "run", str(self.spec), "loop", "--out", str(out),
             "--round-timeout", str(round_timeout), "--wait-for-nodes", "120"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )

    def kill(self, client: str) -> None:
        """``kill`` (SIGTERM) the client's SuperNode: it leaves the federation at once. A crash
        (SIGKILL) is noticed by Flower's heartbeat within about a minute and ends the same way."""
        self.procs[f"supernode-{client}"].send_signal(signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))

    def _strays(self) -> list[int]:
        """Processes Flower started for us (SuperExec, ServerApp, ClientApps): they name our ports."""
        ports = [str(self.link_port), *map(str, self.node_ports.values())]
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
            except (OSError, StopIteration):
                continue
            if "Z" not in state and any(f"127.0.0.1:{p}" in cmd for p in ports) and ("flwr" in cmd or "flower" in cmd):
                found.append(int(proc.name))
        return found

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        deadline = time.monotonic() + 30
        while self._strays() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in self._strays():  # still there after 30 s: they were ours, end them
            os.kill(pid, signal.SIGKILL)
        assert not self._strays(), "Flower processes outlived the test"


@pytest.fixture(scope="module")
def cluster(spec_path, tmp_path_factory):
    if sys.platform != "linux":
        pytest.fail("the deployment tests read /proc to check that no Flower process is left behind")
    c = Cluster(tmp_path_factory.mktemp("cluster"), spec_path)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_deployment_gives_the_inprocess_parameters(cluster, inprocess, tmp_path):
    out = tmp_path / "deployed"
    run = cluster.submit(out, round_timeout=300)
    try:
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 0 and (out / "summary.json").is_file(), cluster.logs()
    np.testing.assert_array_equal(_summary(out)["final_parameters"], _summary(inprocess)["final_parameters"])
    assert _rows(out) == _rows(inprocess)
    assert (out / "spec.toml").read_text() == cluster.spec.read_text()  # the spec travelled inline


def test_a_supernode_killed_mid_run_is_a_dropout(cluster, tmp_path):
    out = tmp_path / "killed"
    run = cluster.submit(out, round_timeout=300)
    try:
        deadline = time.monotonic() + 600
        while not (out / "metrics.csv").is_file():  # written once round 0 is aggregated
            assert run.poll() is None and time.monotonic() < deadline, cluster.logs()
            time.sleep(0.2)
        cluster.kill("b")
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 0 and (out / "summary.json").is_file(), cluster.logs()
    rows = _rows(out)
    assert [(r["round"], r["client"], r["status"]) for r in rows] == [
        ("0", "a", "ok"), ("0", "b", "ok"), ("1", "a", "ok"), ("1", "b", "dropped"),
    ]
    assert "offline" in rows[-1]["error"] and rows[-1]["device"] == "fake_kyiv"
    summary = _summary(out)
    assert summary["clients"]["a"]["rounds_ok"] == 2 and summary["clients"]["b"]["rounds_ok"] == 1
    assert "offline" in summary["clients"]["b"]["note"]
    assert summary["total_shots"] == sum(int(r["shots"]) for r in rows)  # the dropout billed nothing
    assert np.isfinite(summary["final_parameters"]).all()
