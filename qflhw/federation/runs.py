"""Start, resume and read runs: what ``qflhw run`` / ``qflhw resume`` do, callable from Python.

A run directory holds the spec it ran (``spec.toml``, or ``spec.json`` for a spec built in
Python), its journal, ``metrics.csv``, ``summary.json`` and the learning curve. A spec whose
clients use paid devices is priced first and refused when the estimate exceeds
``budget.max_usd``, before any device connects or anything is written.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from qflhw.config.spec import JobSpec, load_spec
from qflhw.errors import ConfigError, QflhwError
from qflhw.execution.journal import Journal
from qflhw.federation.estimate import estimate_spec, needs_estimate
from qflhw.federation.loop import Federation, new_run_dir
from qflhw.federation.outputs import SPEC_FILES, read_metrics
from qflhw.federation.tensorboard import TensorBoardHook, require_tensorboard


@dataclass(frozen=True)
class RunResult:
    """A finished run: where its outputs are and its summary."""

    run_dir: Path
    summary: dict

    @property
    def final_accuracy(self) -> float:
        return float(self.summary["final_test_accuracy"])

    def metrics(self) -> list[dict]:
        """The rows of ``metrics.csv``: one per round and client."""
        return read_metrics(self.run_dir / "metrics.csv")


def refuse_over_budget(spec: JobSpec) -> None:
    """A spec on paid devices whose estimate exceeds ``budget.max_usd`` does not start."""
    if not needs_estimate(spec):
        return
    est = estimate_spec(spec)
    if est.over_budget:
        raise QflhwError(
            f"{spec.name}: estimated cost ${est.total.usd.quantize(Decimal('0.01'))} exceeds budget.max_usd = "
            f"${est.max_usd}; raise the cap or use fewer shots, rounds or clients (details: qflhw estimate SPEC)"
        )


def prepare(spec: JobSpec | str | Path, out: str | Path | None = None) -> tuple[JobSpec, Path, Path | None]:
    """The validated spec, a new run directory for it and the spec file it came from (if any)."""
    source = None if isinstance(spec, JobSpec) else Path(spec)
    job = spec if isinstance(spec, JobSpec) else load_spec(spec)
    refuse_over_budget(job)
    return job, new_run_dir(job, str(out) if out is not None else None), source


def keep_spec(job: JobSpec, run_dir: Path, source: Path | None) -> None:
    """Copy the spec into the run directory (the file that marks it resumable): the original
    file when there is one (``spec.toml``, or ``spec.json`` for a JSON spec), else the spec as JSON."""
    if source is not None:
        shutil.copyfile(source, run_dir / SPEC_FILES[1 if source.suffix == ".json" else 0])
    else:
        (run_dir / SPEC_FILES[1]).write_text(job.model_dump_json(indent=1) + "\n", encoding="utf-8")


def run(
    spec: JobSpec | str | Path, out: str | Path | None = None, *, progress: bool = False, tensorboard: str | Path | None = None
) -> RunResult:
    """Run a federated experiment in-process; ``out`` defaults to ``<spec.output>/<name>-<time>``;
    ``tensorboard``: also write TensorBoard scalars under that folder (needs ``qflhw[tensorboard]``)."""
    if tensorboard is not None:
        require_tensorboard()
    job, run_dir, source = prepare(spec, out)
    fed = Federation(job, run_dir, progress=progress)
    fed.open_journal()  # creates the run directory; the spec file last marks it resumable
    keep_spec(job, run_dir, source)
    return RunResult(run_dir, run_with_hooks(fed, tensorboard))


def run_with_hooks(fed: Federation, tensorboard: str | Path | None = None) -> dict:
    """``fed.run()``, writing TensorBoard scalars under ``tensorboard`` when given; the summary."""
    if tensorboard is None:
        return fed.run()
    hook = TensorBoardHook(fed, tensorboard)
    fed.round_hooks.append(hook)
    try:
        return fed.run()
    finally:
        hook.close()


def reopen(run_dir: str | Path, *, progress: bool = False) -> Federation:
    """A stopped run's federation, restored from its last checkpoint (``next_round`` says where)."""
    run_dir = Path(run_dir)
    spec_file = next((run_dir / f for f in SPEC_FILES if (run_dir / f).is_file()), None)
    if spec_file is None or not (run_dir / Journal.FILENAME).is_file():
        raise ConfigError(
            f"{run_dir}: not a run directory (needs spec.toml or spec.json, and {Journal.FILENAME}); "
            "start one with `qflhw run SPEC`"
        )
    fed = Federation(load_spec(spec_file), run_dir, progress=progress)
    fed.restore()
    return fed


def resume(run_dir: str | Path, *, progress: bool = False, tensorboard: str | Path | None = None) -> RunResult:
    """Continue a stopped run: finished rounds are kept, jobs already sent are fetched, not re-sent."""
    fed = reopen(run_dir, progress=progress)
    return RunResult(fed.run_dir, run_with_hooks(fed, tensorboard))


def read_run(run_dir: str | Path) -> RunResult:
    """The outputs of a run directory; an unfinished run's summary says ``"finished": false``."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{run_dir}: no summary.json yet (no round has finished, or not a run directory)") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{run_dir}/summary.json is not valid JSON ({err})") from err
    return RunResult(run_dir, summary)
