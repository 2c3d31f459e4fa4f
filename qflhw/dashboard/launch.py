"""Runs started from the dashboard's form: SimQFL's knobs in, a ``qflhw run`` on fake devices out.

The form's values become a job spec (validated like any other) whose clients must all use
**fake** device profiles: a paid QPU is never started from the page, whatever the request says,
and the spec's ``budget.max_usd`` is 0 so the ledger would refuse a paid job anyway. The run is
an ordinary ``qflhw run SPEC --out RUNS_DIR/<name>-<time>`` in its own process; its spec file and
console output are kept in ``RUNS_DIR/.dashboard/`` (hidden from the run list).
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from qflhw.config.profiles import available, load_profile
from qflhw.config.spec import JobSpec, parse_spec
from qflhw.errors import ConfigError

PRIVATE = ".dashboard"  # inside RUNS_DIR: specs and logs of runs started from the page


def free_devices() -> list[str]:
    """Profiles the page may start: local fake twins only (they cost nothing and need no account)."""
    out = []
    for name in available():
        try:
            if load_profile(name).provider == "fake":
                out.append(name)
        except ConfigError:
            continue
    return out


@dataclass
class RunRequest:
    """What the form asks for (the knobs SimQFL offers, plus a few to keep a demo run small)."""

    name: str = "dashboard"
    devices: list[str] = field(default_factory=list)  # one per client, in order
    rounds: int = 3
    learning_rate: float = 0.1
    qubits: int = 2
    layers: int = 1
    shots: int = 200
    aggregation: str = "fedavg"
    optimizer: str = "adam"
    dataset: str = "digits"
    classes: list[int] | None = field(default_factory=lambda: [0, 1])
    batch_size: int = 4
    local_epochs: int = 1
    max_train_per_client: int | None = 16
    seed: int = 0

    def spec(self) -> JobSpec:
        """The validated spec; a device that is not a fake twin is refused."""
        if not self.devices:
            raise ConfigError("the form: add at least one client and pick its device")
        free = set(free_devices())
        for k, dev in enumerate(self.devices):
            if dev not in free:
                raise ConfigError(
                    f"the form: client c{k + 1} device {dev!r} is not a fake device; the dashboard starts runs on "
                    f"fake devices only (one of {', '.join(sorted(free))}); run real QPUs with `qflhw run SPEC`"
                )
        data: dict = {"dataset": self.dataset}
        if self.classes:
            data["classes"] = list(self.classes)
        if self.max_train_per_client:
            data["max_train_per_client"] = int(self.max_train_per_client)
        raw = {
            "name": self.name,
            "seed": int(self.seed),
            "rounds": int(self.rounds),
            "data": data,
            "model": {"qubits": int(self.qubits), "layers": int(self.layers)},
            "training": {
                "learning_rate": float(self.learning_rate), "optimizer": self.optimizer, "shots": int(self.shots),
                "batch_size": int(self.batch_size), "local_epochs": int(self.local_epochs),
            },
            "aggregation": {"method": self.aggregation},
            "budget": {"max_usd": 0.0},
            "clients": [{"name": f"c{k + 1}", "device": dev} for k, dev in enumerate(self.devices)],
        }  # fmt: skip
        return parse_spec(raw, "the form")


@dataclass
class Launched:
    name: str
    run_dir: Path
    process: subprocess.Popen
    log: Path


def start_run(runs_dir: Path, request: RunRequest) -> Launched:
    """Validate ``request`` and start it as ``qflhw run`` in a new process under ``runs_dir``."""
    spec = request.spec()
    root = Path(runs_dir).resolve()
    private = root / PRIVATE
    private.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name, n = f"{spec.name}-{stamp}", 1
    while (root / name).exists() or (private / f"{name}.json").exists():
        n += 1
        name = f"{spec.name}-{stamp}-{n}"
    spec_file = private / f"{name}.json"
    spec_file.write_text(json.dumps(spec.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
    log = private / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qflhw.cli", "run", str(spec_file), "--out", str(root / name), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return Launched(name, root / name, proc, log)
