"""Studies: a job spec with a ``[sweep]`` table, expanded into cells that each run as one Federation.

A sweep key names a spec setting by its dotted path and lists the values to try::

    [sweep]
    seed = [1, 2, 3]
    aggregation.method = ["fedavg", "noise-aware"]
    clients.noisy.noise_scale = [1, 2, 4]      # one named client
    clients.noise_scale = [0.5, 1]             # every client (clients.<name>.* wins)
    clients.a.calibration = ["2025-02-26"]     # a bare date means <the profile's device>/<date>

    [[sweep.client_set.eagle]]                 # whole client sets, swept by name
    name = "a"
    device = "fake_brisbane"

The cartesian product of all keys gives the cells. A cell's directory is named by its sweep
values plus a hash of its full spec, so a finished cell (its ``summary.json`` says so) is found
again and skipped on rerun, even after values were added to the sweep. Cells run in worker
processes; a cell that fails is reported and left for the next rerun, the others go on.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import re
import shutil
import sys
import time
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qflhw._util import atomic_write, digest
from qflhw.config.spec import ClientSpec, JobSpec, parse_spec, read_toml
from qflhw.errors import ConfigError, QflhwError
from qflhw.federation.outputs import is_finished, read_summary

CLIENT_SET = "client_set"
_NOT_SWEEPABLE = {"name", "output", "clients"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SWEEPABLE_HELP = (
    "sweepable: seed, rounds, client_fraction, data.<field>, model.<field>, training.<field>, "
    "aggregation.<field>, budget.<field>, evaluation.<field>, personalization.<field>, privacy.<field>, "
    "scheduling.<field>, clients.<field>, clients.<name>.<field>, client_set"
)


@dataclass(frozen=True)
class Cell:
    """One point of the sweep: its values (sweep key -> value) and the full spec it runs."""

    values: dict[str, Any]
    spec: JobSpec

    @property
    def name(self) -> str:
        """Directory name: readable sweep values plus a hash of the whole spec (content-keyed)."""
        slug = "_".join(
            f"{_short(k)}={'+'.join(map(format_value, v)) if isinstance(v, list) else format_value(v)}"
            for k, v in self.values.items()
        )
        slug = re.sub(r"[^A-Za-z0-9_.=+\-]", "-", slug)[:90] or "base"
        return f"{slug}-{digest(json.dumps(self.spec.model_dump(mode='json'), sort_keys=True), 8)}"

    @property
    def setting(self) -> tuple:
        """The sweep values other than the seed: cells that differ only by seed share a setting."""
        return tuple((k, format_value(v)) for k, v in self.values.items() if k != "seed")


@dataclass(frozen=True)
class Study:
    """A validated study: the sweep keys in file order and every cell of their product."""

    source: str
    keys: tuple[str, ...]
    cells: tuple[Cell, ...]
    text: str = ""


def format_value(value: Any) -> str:
    """A sweep value as it appears in file names, CSV columns and tables."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _short(key: str) -> str:
    return key.split(".", 1)[1] if "." in key else key


# ------------------------------------------------------------------------------ expansion
def load_study(path: str | Path) -> Study:
    """Read a study spec (a job spec with a [sweep] table) and expand it; errors name file and key."""
    text, raw = read_toml(Path(path))
    study = expand(raw, str(path))
    return Study(study.source, study.keys, study.cells, text)


def load_base_spec(path: str | Path) -> JobSpec:
    """A job spec or the base of a study spec (its [sweep] table ignored)."""
    _, raw = read_toml(Path(path))
    return base_spec(raw, str(path))


def base_spec(raw: dict[str, Any], source: str) -> JobSpec:
    """The spec without its [sweep] table (what `qflhw run` would run)."""
    return parse_spec({k: v for k, v in raw.items() if k != "sweep"}, source)


def expand(raw: dict[str, Any], source: str = "<spec>") -> Study:
    """Every cell of the sweep, each a validated JobSpec; no [sweep] table gives one cell."""
    raw = dict(raw)
    sweep = raw.pop("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: sweep must be a table, e.g. [sweep] seed = [1, 2, 3]")
    base = parse_spec(raw, source)
    axes, sets = _axes(sweep, source)
    for key in axes:
        _check_key(key, base, sets, source)
    keys = tuple(axes)
    cells = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(keys, combo))
        cell_raw = _apply(raw, values, sets)
        where = f"{source} (sweep cell {', '.join(f'{k}={format_value(v)}' for k, v in values.items())})"
        spec = parse_spec(cell_raw, where)
        cells.append(Cell(values, spec))
    _check_resources(cells, source)
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: [sweep] lists the same value twice in one key; remove the repeat")
    return Study(source, keys, tuple(cells))


def _axes(sweep: dict[str, Any], source: str, prefix: str = "") -> tuple[dict[str, list], dict[str, list]]:
    """Flatten nested sweep tables to dotted keys -> value lists; client sets -> their names.

    Returns the axes and the client sets by name (empty when ``client_set`` is not swept).
    """
    axes: dict[str, list] = {}
    sets: dict[str, list] = {}
    for k, v in sweep.items():
        key = f"{prefix}{k}"
        if key == CLIENT_SET:
            if not isinstance(v, dict) or not v or not all(isinstance(s, list) and s for s in v.values()):
                raise ConfigError(
                    f"{source}: sweep.{CLIENT_SET} must hold named client lists, e.g. "
                    f"[[sweep.{CLIENT_SET}.eagle]] with name and device"
                )
            axes[key], sets = list(v), v
        elif isinstance(v, dict):
            more, _ = _axes(v, source, f"{key}.")
            axes.update(more)
        elif isinstance(v, list) and v:
            axes[key] = v
        else:
            raise ConfigError(f"{source}: sweep key {key!r}: give a non-empty list of values, e.g. {key} = [{v!r}]")
    return axes, sets


def _check_key(key: str, base: JobSpec, sets: dict[str, list], source: str) -> None:
    """A sweep key must name an existing setting; clients.<name> a client of every client set."""
    bad = f"{source}: sweep key {key!r} "
    if key == CLIENT_SET:
        return
    parts = key.split(".")
    client_fields = set(ClientSpec.model_fields) - {"name"}
    if parts[0] == "clients":
        if len(parts) == 2 and parts[1] in client_fields:
            return
        if len(parts) == 3 and parts[2] in client_fields:
            client_lists = list(sets.values()) if sets else [[c.model_dump() for c in base.clients]]
            for clients in client_lists:
                if parts[1] not in {c.get("name") for c in clients}:
                    raise ConfigError(
                        bad + f"names client {parts[1]!r}, which is not among the clients "
                        f"({', '.join(str(c.get('name')) for c in clients)}); fix the name"
                    )
            return
        raise ConfigError(
            bad + f"is not a client setting; use clients.<field> or clients.<name>.<field> with a field "
            f"among {', '.join(sorted(client_fields))}"
        )
    model: type[BaseModel] = JobSpec
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None or (i == 0 and part in _NOT_SWEEPABLE):
            raise ConfigError(bad + f"is not a spec setting; {_SWEEPABLE_HELP}")
        ann = field.annotation
        # an optional table ([scheduling]: SchedulingSpec | None) is swept like the table itself
        tables = [t for t in typing.get_args(ann) if isinstance(t, type) and issubclass(t, BaseModel)]
        if tables and type(None) in typing.get_args(ann):
            ann = tables[0]
        last = i == len(parts) - 1
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if last:
                raise ConfigError(bad + f"is a table; sweep one of its fields, e.g. {key}.{next(iter(ann.model_fields))}")
            model = ann
        elif not last:
            raise ConfigError(bad + f"is not a spec setting; {_SWEEPABLE_HELP}")


def _apply(raw: dict[str, Any], values: dict[str, Any], sets: dict[str, list]) -> dict[str, Any]:
    """The raw spec of one cell: a deep copy of the base with every sweep value set.

    Whatever the file order: the client set comes first, ``clients.<field>`` before
    ``clients.<name>.<field>`` (the named client wins), and calibrations last, so a bare date
    resolves against the device the cell actually uses.
    """
    out = copy.deepcopy(raw)
    if CLIENT_SET in values:
        out["clients"] = copy.deepcopy(sets[values[CLIENT_SET]])

    def order(key: str) -> tuple[bool, int]:
        return key.endswith(".calibration") and key.startswith("clients."), key.count(".")

    for key in sorted(values, key=order):
        value = values[key]
        if key == CLIENT_SET:
            continue
        parts = key.split(".")
        if parts[0] == "clients":
            name, field = (None, parts[1]) if len(parts) == 2 else (parts[1], parts[2])
            for client in out.get("clients", []):
                if name is None or client.get("name") == name:
                    client[field] = _calibration_ref(client, value) if field == "calibration" else value
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _calibration_ref(client: dict[str, Any], value: Any) -> Any:
    """A bare date is the snapshot of that date of the device the client's profile twins (in a list too)."""
    if isinstance(value, list):
        return [_calibration_ref(client, v) for v in value]
    if not (isinstance(value, str) and _DATE.match(value)):
        return value
    from qflhw.config.profiles import load_profile

    prof = load_profile(str(client.get("device")))
    device = (prof.calibration or prof.device).split("/", 1)[0]
    return f"{device}/{value}"


def _check_resources(cells: list[Cell], source: str) -> None:
    """Every device profile and calibration snapshot a cell names exists (before any cell runs)."""
    from qflhw.calibration import snapshot
    from qflhw.calibration.drift import expand_refs
    from qflhw.config.profiles import load_profile

    seen: set[tuple[str, tuple[str, ...]]] = set()
    for cell in cells:
        for c in cell.spec.clients:
            refs = tuple(c.calibration_refs)
            if (c.device, refs) in seen:
                continue
            seen.add((c.device, refs))
            try:
                load_profile(c.device)
                for ref in expand_refs(refs):
                    path = snapshot.resolve(ref)
                    if not path.is_file():
                        raise ConfigError(f"no calibration file {path}")
            except ConfigError as err:
                raise ConfigError(f"{source}: client {c.name!r}: {err}") from err


# ------------------------------------------------------------------------------ running
Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_cell(spec_json: dict[str, Any], cell_dir: str) -> dict:
    """Run one cell as a normal Federation run in ``cell_dir`` (in a worker process)."""
    from qflhw.federation.loop import Federation

    spec = JobSpec.model_validate(spec_json)
    return Federation(spec, Path(cell_dir), progress=False).run()


def _worker_init() -> None:
    """Workers share the machine: one torch thread each (the circuit simulator has its own)."""
    import torch

    torch.set_num_threads(1)


@dataclass
class StudyResult:
    """What a study run did: cells run now, skipped (finished before), failed (error text)."""

    out: Path
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]
    seconds: float


def run_study(study: Study, out: Path, *, workers: int = 2, log: Log = _stderr) -> StudyResult:
    """Run every unfinished cell (``workers`` processes; 1 runs in this process), then report."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "cells").is_dir():
        raise ConfigError(f"{out}: exists and is not a study directory (no cells/); pick another --out")
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    if study.text:
        atomic_write(out / "study.toml", study.text)
    todo, skipped = [], []
    for cell in study.cells:
        cdir = cells_dir / cell.name
        if is_finished(read_summary(cdir / "summary.json")):
            skipped.append(cell.name)
            continue
        if cdir.exists():  # an interrupted cell starts over: cells are the unit of resume
            shutil.rmtree(cdir)
        cdir.mkdir(parents=True)
        atomic_write(cdir / "cell.json", json.dumps(
            {"values": {k: v for k, v in cell.values.items()}, "spec": cell.spec.model_dump(mode="json")},
            indent=1, sort_keys=True,
        ) + "\n")
        todo.append(cell)
    total = len(study.cells)
    log(f"study {out}: {total} cells, {len(skipped)} finished before, {len(todo)} to run on {min(workers, max(len(todo), 1))} worker(s)")
    start = time.perf_counter()
    ran: list[str] = []
    failed: dict[str, str] = {}

    def done(cell: Cell, summary: dict | None, err: str | None) -> None:
        n = len(ran) + len(failed) + len(skipped) + 1
        if err is None:
            ran.append(cell.name)
            log(f"[{n:>3}/{total}] {cell.name}: final accuracy {summary['final_test_accuracy']:.3f} "  # type: ignore[index]
                f"(at {time.perf_counter() - start:.0f} s)")
        else:
            failed[cell.name] = err
            atomic_write(cells_dir / cell.name / "error.txt", err + "\n")
            log(f"[{n:>3}/{total}] {cell.name}: FAILED: {err.splitlines()[-1] if err else ''}")

    if workers == 1 or len(todo) <= 1:
        for cell in todo:
            try:
                summary = run_cell(cell.spec.model_dump(mode="json"), str(cells_dir / cell.name))
                done(cell, summary, None)
            except QflhwError as err:
                done(cell, None, f"{type(err).__name__}: {err}")
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no fork of a process with live threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
            futures = {
                pool.submit(run_cell, c.spec.model_dump(mode="json"), str(cells_dir / c.name)): c for c in todo
            }
            try:
                for fut in as_completed(futures):
                    cell = futures[fut]
                    try:
                        done(cell, fut.result(), None)
                    except Exception as err:  # noqa: BLE001 - a failed cell is data, the others go on
                        text = "".join(traceback.format_exception_only(type(err), err)).strip()
                        done(cell, None, text)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return StudyResult(out, ran, skipped, failed, time.perf_counter() - start)


def default_out(study: Study) -> Path:
    """``<spec.output>/<name>-study``: a fixed place, so running the command again resumes."""
    spec = study.cells[0].spec
    return Path(spec.output) / f"{spec.name}-study"


def report_study(study: Study, out: Path) -> tuple[str, list[str]]:
    """Write study.csv, summary.md and the plots from the finished cells; returns the table."""
    from qflhw.studies.report import markdown_table, write_report

    out = Path(out)
    rows = tidy_rows(study, out)
    write_csv(out / "study.csv", rows, study.keys)
    done = len({r["cell"] for r in rows})
    table = markdown_table(rows, study.keys) if rows else "(no finished cells yet)"
    head = f"# {study.source}: {done} of {len(study.cells)} cells finished\n\nFinal global test accuracy per setting, over seeds.\n\n"
    from qflhw.studies.report import clients_table

    entries = []
    for cell in study.cells:
        path = out / "cells" / cell.name / "summary.json"
        if path.is_file():
            entries.append((cell.values, json.loads(path.read_text(encoding="utf-8"))))
    more = clients_table(entries, study.keys)
    if more:
        more = ("\n\nThe clients' own test rows at the last round (pooled over clients; AUROC/AUPR: row-weighted "
                "means), model size and epsilon spent, over seeds.\n\n" + more)
    atomic_write(out / "summary.md", head + table + more + "\n")
    plots = write_report(out, rows, study.keys)
    return table, ["study.csv", "summary.md", *[p.name for p in plots]]


# ------------------------------------------------------------------------------ tidy table
ROW_FIELDS = [
    "seed", "aggregation", "partition", "client", "device", "calibration", "noise_scale",
    "round", "status", "num_samples", "steps", "loss", "shots", "esp", "variance", "calibration_id",
    "layout", "noise_estimate", "weight", "suppression", "decision", "sum_rate_bps", "latency_s",
    "global_test_accuracy", "global_test_loss", "error",
    "client_test_accuracy", "client_test_auroc", "client_test_aupr",
    "personal_test_accuracy", "personal_test_auroc", "personal_test_aupr", "dp_epsilon",
]


def tidy_rows(study: Study, out: Path) -> list[dict[str, Any]]:
    """One row per finished cell, round and client: cell name, sweep values, then the metrics."""
    rows = []
    for cell in study.cells:
        metrics = Path(out) / "cells" / cell.name / "metrics.csv"
        if not is_finished(read_summary(metrics.parent / "summary.json")):
            continue
        clients = {c.name: c for c in cell.spec.clients}
        with open(metrics, encoding="utf-8", newline="") as fh:
            for m in csv.DictReader(fh):
                c = clients[m["client"]]
                row: dict[str, Any] = {"cell": cell.name}
                row.update({k: format_value(v) for k, v in cell.values.items()})
                row.update(
                    seed=cell.spec.seed,
                    aggregation=cell.spec.aggregation.method,
                    partition=cell.spec.data.partition,
                    calibration=" ".join(c.calibration_refs),
                    noise_scale=c.noise_scale,
                )
                for f in ROW_FIELDS:
                    if f not in row:
                        row[f] = m.get(f, "")
                rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """The study's tidy table; sweep keys are columns right after ``cell``."""
    fields = ["cell", *[k for k in keys if k not in ROW_FIELDS], *ROW_FIELDS]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())

