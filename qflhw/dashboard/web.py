"""``qflhw dashboard [RUNS_DIR]``: a local web dashboard of the runs in a folder (NiceGUI).

NiceGUI (an optional extra, ``qflhw[dashboard]``) serves the pages and pushes every update over
its websocket; a ``ui.timer`` re-reads each open run once a second through
:mod:`qflhw.dashboard.state`, so the dashboard locks nothing and a run never waits for it.

* ``/``: the runs under RUNS_DIR (status, rounds, accuracy, spend), a picker for two runs side by
  side, and a form that starts a new run on fake devices (:mod:`qflhw.dashboard.launch`).
* ``/run/<name>``: live learning curves (global test accuracy and loss, each client's training
  loss), a per-client table (device, ESP, job state, shots, USD, last error), a job timeline and
  the latest events.
* ``/compare?a=<name>&b=<name>``: two runs side by side.

Safety: it binds 127.0.0.1 unless ``--host`` says otherwise; it serves no files at all (charts
are drawn from data), and a run name in a URL is resolved strictly inside RUNS_DIR
(:func:`qflhw.dashboard.state.resolve_run`: no ``..``, no hidden parts, no symlink out). It
shows only what the run directory holds, which never contains credentials.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any

from qflhw.config.spec import AGGREGATION_METHODS, BUILTIN_DATASETS
from qflhw.dashboard.launch import PRIVATE, Launched, RunRequest, free_devices, start_run
from qflhw.dashboard.state import ACTIVE_STATES, RunState, list_runs, read_state, resolve_run
from qflhw.errors import QflhwError
from qflhw.execution.events import describe

REFRESH_S = 1.0


class Dashboard:
    """The pages of one RUNS_DIR."""

    def __init__(self, runs_dir: Path):
        self.root = Path(runs_dir).resolve()
        self.launched: dict[str, Launched] = {}
        self._cache: dict[Path, tuple[tuple, RunState]] = {}

    # ------------------------------------------------------------------ data
    def state(self, path: Path, name: str) -> RunState:
        """The run's state, re-read only when one of its files changed."""
        sig = tuple(_stat(path / f) for f in ("events.jsonl", "metrics.csv", "summary.json"))
        cached = self._cache.get(path)
        if cached and cached[0] == sig:
            st = cached[1]
            st.now = _dt.datetime.now(_dt.UTC)
            return st
        st = read_state(path, name)
        self._cache[path] = (sig, st)
        return st

    def reap(self) -> None:
        """Collect finished child runs (no zombies)."""
        for item in self.launched.values():
            item.process.poll()

    # ------------------------------------------------------------------ pages
    def pages(self) -> None:
        from nicegui import ui

        @ui.page("/")
        def index() -> None:
            _header("qflhw runs")
            ui.label(str(self.root)).classes("text-caption text-grey")
            self.run_list()
            ui.separator()
            self.compare_picker()
            ui.separator()
            self.form()

        @ui.page("/run/{name:path}")
        def run_page(name: str) -> None:
            _header(f"run {name}")
            path = resolve_run(self.root, name)
            if path is None:
                if name in self.launched:
                    self.waiting_for(name)
                else:
                    ui.label("no such run in this dashboard's folder").props('data-testid="not-found"')
                return
            self.run_panel(path, name)

        @ui.page("/compare")
        def compare(a: str = "", b: str = "") -> None:
            _header("two runs side by side")
            paths = [(n, resolve_run(self.root, n)) for n in (a, b)]
            if any(p is None for _, p in paths):
                ui.label("pick two runs of this dashboard's folder").props('data-testid="not-found"')
                return
            with ui.row().classes("w-full no-wrap items-start"):
                for n, p in paths:
                    with ui.column().classes("w-1/2").props(f'data-testid="side-{n}"'):
                        assert p is not None
                        self.run_panel(p, n, compact=True)

    def run_list(self) -> None:
        from nicegui import ui

        columns = [{"name": k, "label": k, "field": k, "align": "left"} for k in
                   ("run", "status", "rounds", "test accuracy", "spent $", "shots", "updated")]  # fmt: skip

        def rows() -> list[dict]:
            self.reap()
            out = []
            for name in list_runs(self.root):
                try:
                    st = self.state(self.root / name, name)
                except QflhwError:
                    continue
                out.append({
                    "run": name, "status": st.status,
                    "rounds": f"{st.rounds_done} of {st.planned_rounds}" if st.planned_rounds else str(st.rounds_done),
                    "test accuracy": f"{st.accuracy[-1]:.3f}" if st.accuracy else "-",
                    "spent $": f"{st.total_usd:.2f}", "shots": f"{st.total_shots:,}",
                    "updated": st.updated.strftime("%Y-%m-%d %H:%M:%S UTC") if st.updated else "",
                })  # fmt: skip
            return out

        table = ui.table(columns=columns, rows=rows(), row_key="run").props('data-testid="runs" flat dense')
        table.add_slot("body-cell-run", '<q-td :props="props"><a :href="\'/run/\' + props.value" '
                       ':data-testid="\'run-link-\' + props.value">{{ props.value }}</a></q-td>')
        count = ui.label().props('data-testid="run-count"')

        def update() -> None:
            table.rows = rows()
            table.update()
            count.set_text(f"{len(table.rows)} run{'' if len(table.rows) == 1 else 's'}")

        update()
        ui.timer(REFRESH_S, update)

    def compare_picker(self) -> None:
        from nicegui import ui

        names = list_runs(self.root)
        ui.label("Compare two runs").classes("text-h6")
        with ui.row().classes("items-center"):
            a = ui.select(names, value=names[0] if names else None, label="left").classes("w-64").props('data-testid="cmp-a"')
            b = ui.select(names, value=names[1] if len(names) > 1 else None, label="right").classes("w-64").props(
                'data-testid="cmp-b"')
            ui.button("side by side", on_click=lambda: ui.navigate.to(f"/compare?a={a.value}&b={b.value}")).props(
                'data-testid="compare"')

    def form(self) -> None:
        from nicegui import ui

        free = free_devices()
        d = RunRequest()
        ui.label("Start a run on fake devices").classes("text-h6")
        ui.label("Runs started here use local fake twins only; paid QPUs run with `qflhw run SPEC`.").classes(
            "text-caption")
        with ui.row():
            name = ui.input("name", value=d.name).props('data-testid="f-name"')
            n_clients = ui.number("clients", value=2, min=1, max=10, step=1, precision=0).props('data-testid="f-clients"')
            rounds = ui.number("rounds", value=d.rounds, min=1, max=200, step=1, precision=0).props(
                'data-testid="f-rounds"')
            lr = ui.number("learning rate", value=d.learning_rate, min=1e-6, step=0.01).props('data-testid="f-lr"')
            optimizer = ui.select(["adam", "sgd"], value=d.optimizer, label="optimizer").props('data-testid="f-opt"')
        with ui.row():
            qubits = ui.number("qubits", value=d.qubits, min=1, max=16, step=1, precision=0).props('data-testid="f-qubits"')
            layers = ui.number("layers", value=d.layers, min=1, max=20, step=1, precision=0).props('data-testid="f-layers"')
            shots = ui.number("shots (0 = exact)", value=d.shots, min=0, step=100, precision=0).props(
                'data-testid="f-shots"')
            aggregation = ui.select(list(AGGREGATION_METHODS), value=d.aggregation, label="aggregation").props(
                'data-testid="f-agg"')
        with ui.row():
            dataset = ui.select(list(BUILTIN_DATASETS), value=d.dataset, label="dataset").props('data-testid="f-data"')
            classes = ui.input("classes (e.g. 0,1; empty = all)", value="0,1").props('data-testid="f-classes"')
            batch = ui.number("batch size", value=d.batch_size, min=1, step=1, precision=0).props('data-testid="f-batch"')
            rows = ui.number("train rows per client (0 = all)", value=d.max_train_per_client, min=0, step=1,
                             precision=0).props('data-testid="f-rows"')
            seed = ui.number("seed", value=d.seed, step=1, precision=0).props('data-testid="f-seed"')
        device_selects: list[Any] = []

        @ui.refreshable
        def devices() -> None:
            old = [s.value for s in device_selects]
            device_selects.clear()
            with ui.row():
                for k in range(max(1, int(n_clients.value or 1))):
                    value = old[k] if k < len(old) else (free[k % len(free)] if free else None)
                    device_selects.append(
                        ui.select(free, value=value, label=f"client c{k + 1} device").classes("w-48").props(
                            f'data-testid="f-dev-{k + 1}"')
                    )

        devices()
        n_clients.on_value_change(lambda _: devices.refresh())
        error = ui.label().classes("text-negative").props('data-testid="form-error"')

        def start() -> None:
            try:
                req = RunRequest(
                    name=str(name.value or "dashboard"), devices=[str(s.value) for s in device_selects],
                    rounds=_i(rounds.value), learning_rate=float(lr.value or 0), qubits=_i(qubits.value),
                    layers=_i(layers.value), shots=_i(shots.value), aggregation=str(aggregation.value),
                    optimizer=str(optimizer.value), dataset=str(dataset.value), classes=_classes(str(classes.value or "")),
                    batch_size=_i(batch.value), max_train_per_client=_i(rows.value) or None, seed=_i(seed.value),
                )  # fmt: skip
                launched = start_run(self.root, req)
            except (QflhwError, ValueError) as err:
                error.set_text(str(err))
                ui.notify(str(err), type="negative")
                return
            self.launched[launched.name] = launched
            ui.navigate.to(f"/run/{launched.name}")

        ui.button("Start run", on_click=start).props('data-testid="start" color=primary')

    def waiting_for(self, name: str) -> None:
        """A run just started from the form whose directory does not exist yet."""
        from nicegui import ui

        item = self.launched[name]
        label = ui.label(f"starting {name} …").props('data-testid="starting"')

        def check() -> None:
            if resolve_run(self.root, name) is not None:
                ui.navigate.reload()
            elif item.process.poll() is not None:
                tail = item.log.read_text(encoding="utf-8", errors="replace")[-600:] if item.log.is_file() else ""
                label.set_text(f"the run exited ({item.process.returncode}) before it started: {tail}")

        ui.timer(0.5, check)

    def run_panel(self, path: Path, name: str, *, compact: bool = False) -> None:
        """Everything about one run, updated live."""
        from nicegui import ui

        st = self.state(path, name)
        if compact:
            ui.link(name, f"/run/{name}").classes("text-h6")
        status = ui.label().classes("text-subtitle1").props(f'data-testid="status-{name}"' if compact else 'data-testid="status"')
        ui.label(", ".join(f"{k} {v}" for k, v in st.settings.items())).classes("text-caption")
        curve = ui.echart(_curve_options(st)).classes("w-full h-72").props(
            f'data-testid="curve-{name}"' if compact else 'data-testid="curve"')
        client_cols = ["client", "device", "ESP", "state", "job id", "waited", "shots", "USD", "rounds ok", "last error / retry"]
        clients = ui.table(columns=[{"name": c, "label": c, "field": c, "align": "left"} for c in client_cols],
                           rows=[], row_key="client").props('data-testid="clients" flat dense')
        timeline = ui.echart(_timeline_options(st)).classes("w-full h-48").props('data-testid="timeline"')
        events = None
        if not compact:
            ui.label("latest events").classes("text-subtitle2")
            events = ui.table(columns=[{"name": c, "label": c, "field": c, "align": "left"} for c in ("time", "kind", "what")],
                              rows=[], row_key="n").props('data-testid="events" flat dense')

        shown: list[RunState] = []

        def update() -> None:
            s = self.state(path, name)
            if shown and shown[0] is s and not any(c.state in ACTIVE_STATES for c in s.clients.values()):
                return  # nothing changed on disk and no job is waiting: keep the page as it is
            shown[:] = [s]
            planned = f" of {s.planned_rounds}" if s.planned_rounds else ""
            acc = f", test accuracy {s.accuracy[-1]:.3f}" if s.accuracy else ""
            status.set_text(f"{s.status}: rounds done {s.rounds_done}{planned}{acc}; spent ${s.total_usd:.2f}"
                            f"{f' of ${s.budget_usd:.2f}' if s.budget_usd else ''}, {s.total_shots:,} shots")
            curve.options.clear()
            curve.options.update(_curve_options(s))
            curve.update()
            clients.rows = [_client_row(c, s.now) for c in s.clients.values()]
            clients.update()
            timeline.options.clear()
            timeline.options.update(_timeline_options(s))
            timeline.update()
            if events is not None:
                events.rows = [{"n": i, "time": e.get("time", ""), "kind": e.get("kind", ""), "what": describe(e)}
                               for i, e in list(enumerate(s.events))[-15:][::-1]]
                events.update()

        update()
        timer = ui.timer(REFRESH_S, update)
        if st.finished:  # nothing will change: one last look is enough
            timer.active = False


# ---------------------------------------------------------------------- chart options
def _curve_options(st: RunState) -> dict:
    """Global test accuracy (left axis) and each client's training loss (right axis) per round."""
    series: list[dict] = [
        {"name": "test accuracy", "type": "line", "yAxisIndex": 0, "data": [[r, a] for r, a in enumerate(st.accuracy)]},
        {"name": "test loss", "type": "line", "yAxisIndex": 1, "lineStyle": {"type": "dashed"},
         "data": [[r, v] for r, v in enumerate(st.loss)]},
    ]
    for c in st.clients.values():
        pts = [[int(r["round"]), float(r["loss"])] for r in st.metrics if r["client"] == c.name and _finite(r["loss"])]
        series.append({"name": f"loss {c.name}", "type": "line", "yAxisIndex": 1, "symbolSize": 4, "data": pts})
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"type": "scroll", "top": 0},
        "grid": {"left": 50, "right": 50, "top": 50, "bottom": 30},
        "xAxis": {"type": "value", "name": "round", "minInterval": 1},
        "yAxis": [{"type": "value", "name": "accuracy", "min": 0, "max": 1}, {"type": "value", "name": "loss"}],
        "series": series,
    }


def _timeline_options(st: RunState) -> dict:
    """One row per client; each provider job a bar from sent to final (open ones up to now)."""
    names = list(st.clients)
    series = []
    for name in names:
        segments = [{"coords": [[_ms(j.start), name], [_ms(j.end or st.now), name]], "name": f"{j.job_id} ({j.state})"}
                    for j in st.jobs if j.client == name]
        series.append({"name": name, "type": "lines", "coordinateSystem": "cartesian2d", "data": segments,
                       "lineStyle": {"width": 10, "opacity": 0.8}})
    span = [_ms(j.start) for j in st.jobs] + [_ms(j.end or st.now) for j in st.jobs]
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "grid": {"left": 90, "right": 20, "top": 10, "bottom": 30},
        "xAxis": {"type": "time", **({"min": min(span), "max": max(span)} if span else {})},
        "yAxis": {"type": "category", "data": names},
        "series": series,
    }


def _client_row(c: Any, now: _dt.datetime) -> dict:
    waited = c.waited(now)
    return {
        "client": c.name, "device": c.device, "ESP": "-" if c.esp is None else f"{c.esp:.3f}",
        "state": c.state + (f" (queue {c.queue_position})" if c.queue_position and c.state == "queued" else ""),
        "job id": c.job_id or "-", "waited": "-" if waited is None else f"{waited:.1f} s", "shots": f"{c.shots:,}",
        "USD": f"{c.usd:.2f}", "rounds ok": c.rounds_ok, "last error / retry": c.last_error,
    }  # fmt: skip


def _header(title: str) -> None:
    from nicegui import ui

    with ui.row().classes("items-baseline"):
        ui.link("qflhw", "/").classes("text-h5 no-underline")
        ui.label(title).classes("text-h6")


def _stat(path: Path) -> tuple[int, int]:
    try:
        s = path.stat()
    except OSError:
        return (0, -1)
    return (s.st_mtime_ns, s.st_size)


def _ms(t: _dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _finite(value: str) -> bool:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return False
    return f == f and abs(f) != float("inf")


def _i(value: Any) -> int:
    return int(round(float(value or 0)))


def _classes(text: str) -> list[int] | None:
    text = text.strip()
    if not text:
        return None
    try:
        return [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise QflhwError(f"the form: classes must be integers separated by commas, got {text!r}") from None


def serve(runs_dir: Path, *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the dashboard of ``runs_dir`` until interrupted."""
    root = Path(runs_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    # NiceGUI keeps its own storage in ./.nicegui by default; keep it out of the user's folder
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(root / PRIVATE / "nicegui"))
    from nicegui import ui

    Dashboard(root).pages()
    shown = f"[{host}]" if ":" in host else host
    print(f"qflhw dashboard of {root}: http://{shown}:{port}/ (Ctrl-C stops it)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"qflhw: warning: bound to {host}: anyone who can reach this address can start runs on fake devices "
              "and read every run in the folder", file=sys.stderr, flush=True)
    ui.run(host=host, port=port, reload=False, show=False, title="qflhw dashboard", show_welcome_message=False,
           uvicorn_logging_level="warning", favicon="⚛")
