"""The ``qflhw`` command line.

Every user error ends in one line on stderr naming the file, field, client or device and the
fix, with exit status 2; nothing already written is touched. ``-v`` / ``--log-level`` show the
run's events (submissions, job states, retries, dropouts, rounds) as log lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from qflhw.calibration import snapshot as cal_mod
from qflhw.errors import QflhwError


def _cmd_run(args: argparse.Namespace) -> int:
    from qflhw.federation.outputs import summary_table
    from qflhw.federation.runs import keep_spec, prepare, run

    if args.engine == "flower-sim":  # the same rounds in Flower's simulation engine (qflhw[flower])
        from qflhw.flower.simulation import run_simulation

        if args.tensorboard:
            from qflhw.federation.tensorboard import require_tensorboard

            require_tensorboard()
        spec, run_dir, source = prepare(args.spec, args.out)
        run_dir.mkdir(parents=True, exist_ok=True)
        keep_spec(spec, run_dir, source)
        summary = run_simulation(spec, args.spec, run_dir, progress=not args.quiet, tensorboard=args.tensorboard)
    else:
        result = run(args.spec, args.out, progress=not args.quiet, tensorboard=args.tensorboard)
        run_dir, summary = result.run_dir, result.summary
    print(summary_table(summary))
    print(f"outputs: {run_dir}/ (metrics.csv, summary.json, learning_curve.png)")
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from qflhw.config.spec import load_spec
    from qflhw.federation.estimate import estimate_spec, format_estimate

    est = estimate_spec(load_spec(args.spec))
    print(json.dumps(est.to_dict(), indent=2) if args.json else format_estimate(est))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from qflhw.config.spec import load_plan_spec
    from qflhw.federation.bill import calibration_from
    from qflhw.studies.plan import default_cache, format_plan, make_plan, write_plan

    spec, plan = load_plan_spec(args.spec)
    calibration = calibration_from(args.calibrate_from) if args.calibrate_from else None
    cache = None if args.no_cache else (Path(args.cache) if args.cache else default_cache(spec))
    res = make_plan(spec, plan, args.budget_usd, target=args.target_accuracy, workers=args.workers, cache=cache,
                    calibration=calibration, log=lambda m: print(m, file=sys.stderr, flush=True))
    written = write_plan(res, Path(args.out)) if args.out and res.best is not None else []
    print(json.dumps(res.to_dict(), indent=2) if args.json else format_plan(res))
    if written:
        print(f"wrote {written[0]} (the plan, on the live devices) and {written[1]} (its twin rehearsal)", file=sys.stderr)
    elif args.out:
        print(f"qflhw: nothing written to {args.out}: no plan fits in ${args.budget_usd}", file=sys.stderr)
    return 0 if res.best is not None and res.reached else 1


def _cmd_resume(args: argparse.Namespace) -> int:
    from qflhw.federation.outputs import summary_table
    from qflhw.federation.runs import reopen, run_with_hooks

    if args.tensorboard:
        from qflhw.federation.tensorboard import require_tensorboard

        require_tensorboard()
    fed = reopen(args.run_dir, progress=not args.quiet)
    print(f"resuming {args.run_dir} at round {fed.next_round} of {fed.spec.rounds}", file=sys.stderr)
    print(summary_table(run_with_hooks(fed, args.tensorboard)))
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from qflhw.studies.sweep import default_out, load_study, report_study, run_study

    study = load_study(args.spec)
    out = Path(args.out) if args.out else default_out(study)
    result = run_study(study, out, workers=args.workers)
    table, files = report_study(study, out)
    print(table)
    print(f"outputs: {out}/ ({', '.join(files)}); {len(result.ran)} cells run in {result.seconds:.0f} s")
    if result.failed:
        print(
            f"qflhw: {len(result.failed)} of {len(study.cells)} cells failed (see {out}/cells/*/error.txt); "
            "run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from qflhw.config.profiles import available, load_profile

    rows = [load_profile(n) for n in available()]
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return 0
    print(f"{'profile':<34} {'provider':<8} {'qubits':>6}  {'price':<34} {'calibration':<26} status")
    for p in rows:
        price = []
        if p.price.per_task:
            price.append(f"${p.price.per_task}/task")
        if p.price.per_shot:
            price.append(f"${p.price.per_shot}/shot")
        if p.price.per_second:
            price.append(f"${p.price.per_second}/s")
        status = (f"retired {p.retired}, use {p.replacement}" if p.retired and not p.emulate
                  else "emulated (offline rehearsal)" if p.emulate else "")
        print(f"{p.name:<34} {p.provider:<8} {p.qubits:>6}  {(' + '.join(price) or 'free'):<34} "
              f"{p.calibration or '-':<26} {status}".rstrip())
    return 0


def _cmd_calibration(args: argparse.Namespace) -> int:
    if args.action == "list":
        for dev in cal_mod.devices():
            dates = [p.stem for p in cal_mod.snapshots(dev)]
            print(f"{dev:<22} {', '.join(dates)}")
        return 0
    if args.action == "show":
        c = cal_mod.load(args.device)
        med = c.median_errors()
        t1 = sorted(q.t1 for q in c.qubits if q.t1)
        t2 = sorted(q.t2 for q in c.qubits if q.t2)
        print(f"{c.device} {c.date}  ({c.provenance.kind}: {c.provenance.source})")
        print(f"  qubits {c.num_qubits}, native gates {', '.join(c.native_gates)}, couplings {len(c.coupling_map)}")
        print(f"  median errors: 1q {med['1q']:.2e}, 2q {med['2q']:.2e}, readout {med['readout']:.2e}")
        if t1:
            print(f"  median T1 {t1[len(t1) // 2] * 1e6:.1f} us, T2 {t2[len(t2) // 2] * 1e6:.1f} us" if t2 else "")
        print(f"  id {c.id}")
        if args.fidelity:
            from qflhw.calibration.fidelity import fidelity_report

            print()
            print(fidelity_report(c))
        return 0
    if args.action in ("export", "import"):
        if args.action == "export":
            from qflhw.calibration.qiskit_import import from_fake_backend_name

            cal = from_fake_backend_name(args.backend, device=args.device)
        else:
            from qflhw.calibration.braket_import import import_properties_file

            cal = import_properties_file(Path(args.properties), device=args.device)
        kept, path, new = cal_mod.save_capture(cal, Path(args.root) if args.root else None)
        print(f"wrote {path}" if new else f"unchanged: {path} holds the same figures")
        note = next((n for n in kept.provenance.notes.split("; ") if n.startswith("skipped")), "")
        if note:
            print(f"note: {note}")
        return 0
    if args.action in ("diff", "scale", "heterogeneity", "drift"):
        return _calibration_tools(args)
    raise AssertionError(args.action)


def _calibration_tools(args: argparse.Namespace) -> int:
    from qflhw.calibration import tools

    if args.action == "diff":
        print(tools.format_diff(tools.diff(cal_mod.load(args.a), cal_mod.load(args.b)), args.a, args.b))
    elif args.action == "scale":
        path, old, new = tools.write_scaled(args.device, args.factor, args.out)
        m0, m1 = old.median_errors(), new.median_errors()
        print(f"wrote {path}: {old.device} {old.date} with errors x{args.factor:g}, T1/T2 /{args.factor:g} "
              f"(median 2q {m0['2q']:.2e} -> {m1['2q']:.2e}, readout {m0['readout']:.2e} -> {m1['readout']:.2e})")
        print(f'use it in a spec as a client\'s  calibration = "{path}"')
    elif args.action == "drift":
        from qflhw.calibration.drift import write_series
        from qflhw.config.spec import DriftSpec

        drift = DriftSpec(
            sigma=args.sigma, tau_rounds=args.tau, common=args.common, recalibrate_every=args.recalibrate_every, seed=args.seed
        )
        paths = write_series(args.device, drift, args.steps, args.out, seed=args.seed, noise_scale=args.noise_scale)
        print(f"wrote {len(paths)} drifted snapshots to {paths[0].parent}/ ({paths[0].stem} .. {paths[-1].stem}): "
              f"OU drift sigma {args.sigma:g}, tau {args.tau:g} steps, seed {args.seed}")
        print(f'step through them in a spec with a client\'s  calibration = "{paths[0].parent}/*.json"')
    else:
        from qflhw.federation.quality import client_quality, format_quality
        from qflhw.studies.sweep import load_base_spec

        print(format_quality(client_quality(load_base_spec(args.spec))))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """The table and plot of a finished, running or crashed run (read-only while it runs)."""
    from qflhw.dashboard.state import read_state, summary_of
    from qflhw.federation.outputs import plot_learning_curve, summary_table

    run = Path(args.run_dir)
    st = read_state(run)
    if not st.metrics:
        print(f"run {st.run_id} ({st.status}): no round finished yet of {st.planned_rounds or '?'}; "
              f"`qflhw watch {run}` shows its jobs")
        return 0
    summary = summary_of(st)
    print(summary_table(summary, st.planned_rounds))
    from qflhw.federation.bill import bill_rows, format_bill, has_bill, run_waits

    if has_bill(summary):  # a paid or emulated device: what was estimated against what was reported
        emulated = [n for n, c in summary["clients"].items() if c.get("emulated")]
        print(format_bill(bill_rows(summary, run_waits(run)), emulated))
    png = run / "learning_curve.png"
    if st.finished or not png.is_file():  # a live run redraws its own after every round
        plot_learning_curve(png, st.metrics, str(summary["run_id"]))
        print(f"re-drew {png}")
    else:
        print(f"learning curve: {png} (the run redraws it after every round)")
    if not st.finished:
        hint = f"; continue it with `qflhw resume {run}`" if st.status == "stopped" else ""
        print(f"status: {st.status}{hint}")
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from qflhw.dashboard.terminal import watch

    try:
        return watch(args.run_dir, once=args.once, interval=args.interval)
    except KeyboardInterrupt:  # leaving the view; the run goes on
        return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        from qflhw.dashboard.web import serve
    except ImportError as err:
        raise QflhwError(f"the dashboard needs NiceGUI ({err}): pip install 'qflhw[dashboard]'") from err
    serve(Path(args.runs_dir), host=args.host, port=args.port)
    return 0


def setup_logging(verbose: int = 0, level: str | None = None) -> None:
    """qflhw's log lines on stderr: WARNING by default, INFO with -v, DEBUG with -vv, or ``level``."""
    chosen = level or ("DEBUG" if verbose >= 2 else "INFO" if verbose == 1 else "WARNING")
    logger = logging.getLogger("qflhw")
    for h in [h for h in logger.handlers if getattr(h, "_qflhw_cli", False)]:
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler._qflhw_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(chosen)
    logger.propagate = False


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="qflhw", description="Quantum federated learning on real QPUs and their fake twins.")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="log the run's events on stderr: -v submissions, job states and rounds; -vv everything")
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                    help="log level of qflhw's messages (overrides -v; default WARNING: retries and dropouts)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a federated experiment from a job spec", description="Run a job spec.")
    p.add_argument("spec", help="job spec (TOML), e.g. jobs/quickstart.toml")
    p.add_argument("--out", help="run directory (default: <spec.output>/<name>-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["inprocess", "flower-sim"], default="inprocess",
                   help="inprocess (default): clients train in threads here; flower-sim: in Flower's simulation "
                   "engine (needs qflhw[flower]); for machines of their own see `qflhw flower`")
    p.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard scalars to DIR/<run id> after every "
                   "round (needs qflhw[tensorboard]); view with `tensorboard --logdir DIR`")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("estimate", help="jobs, shots and USD a job spec will cost (offline)",
                       description="Price a job spec per client, per round and for the run, from the device "
                       "profiles' prices and calibration snapshots; needs no credentials or network.")
    p.add_argument("spec", help="job spec (TOML), e.g. jobs/ibm-template.toml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_estimate)

    p = sub.add_parser("plan", help="the settings that reach the best accuracy within a budget, rehearsed on the twins",
                       description="Search the settings that move cost (gradient, shots, adaptive shots, batch size, "
                       "local epochs, rounds, client fraction, mitigation, devices per client from [plan]), price them "
                       "with the ledger's cost model on the live profiles, rehearse the affordable ones on the fake twins "
                       "and print the Pareto front of cost and predicted accuracy. Exit 1 when nothing fits or the target "
                       "is not reached. See docs/planning.md.")
    p.add_argument("spec", help="job spec (TOML), e.g. jobs/quickstart.toml; its [plan] table narrows the search")
    p.add_argument("--budget-usd", type=float, required=True, help="most the run may cost (USD)")
    p.add_argument("--target-accuracy", type=float, help="the cheapest plan predicted to reach it wins (default: the most accurate)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--out", help="write the best plan as a spec on the live devices (and <out>-twins.toml, its rehearsal)")
    p.add_argument("--calibrate-from", nargs="+", metavar="RUN_DIR",
                   help="correct prices (reported/estimated per device) and queue waits with earlier runs' records")
    p.add_argument("--workers", type=int, default=2, help="rehearsal processes (default 2)")
    p.add_argument("--cache", help="rehearsal cache folder (default <spec.output>/.plan-cache)")
    p.add_argument("--no-cache", action="store_true", help="rehearse everything again, keep nothing")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("resume", help="continue a stopped run", description="Continue a stopped run: finished "
                       "rounds are kept, jobs already sent are fetched, not sent again.")
    p.add_argument("run_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars to DIR/<run id> (the rounds "
                   "done are written again, so the curves hold each round once)")
    p.set_defaults(func=_cmd_resume)

    p = sub.add_parser("study", help="run a sweep of federated experiments", description="Run every cell of a "
                       "study spec's [sweep] (finished cells are skipped), then write study.csv, summary.md and plots.")
    p.add_argument("spec", help="study spec (TOML with a [sweep] table), e.g. jobs/heterogeneity.toml")
    p.add_argument("--out", help="study directory (default: <spec.output>/<name>-study); rerun to resume")
    p.add_argument("--workers", type=int, default=2, help="cells run in parallel processes (default 2)")
    p.set_defaults(func=_cmd_study)

    p = sub.add_parser("devices", help="list device profiles", description="List device profiles in backends/.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser(
        "calibration",
        help="list, show, export, import, diff, scale or drift snapshots; per-client heterogeneity",
        description="Calibration snapshots.",
    )
    csub = p.add_subparsers(dest="action", required=True)
    csub.add_parser("list", help="devices and snapshot dates")
    s = csub.add_parser("show", help="summary of one snapshot")
    s.add_argument("device", help="<device>[/<date>|/latest], e.g. ibm_torino")
    s.add_argument("--fidelity", action="store_true",
                   help="what a fake twin of it models, from which figures, which gates it cannot reproduce, what it leaves out")
    s = csub.add_parser("export", help="write a snapshot from a qiskit-ibm-runtime fake backend")
    s.add_argument("backend", help="fake backend name, e.g. FakeKingston, kingston or ibm_kingston")
    s.add_argument("--device", help="snapshot device name (default: ibm_<backend>)")
    s.add_argument("--root", help="calibration folder (default: the project's calibration/)")
    s = csub.add_parser("import", help="write a snapshot from saved Braket device properties (JSON)")
    s.add_argument("properties", help="AwsDevice.properties JSON of an IonQ, IQM or Rigetti QPU")
    s.add_argument("--device", help="snapshot device name (default: the file name without -properties)")
    s.add_argument("--root", help="calibration folder (default: the project's calibration/)")
    s = csub.add_parser("diff", help="what changed between two snapshots")
    s.add_argument("a", help="<device>/<date>, <device> (latest) or a .json path, e.g. ibm_torino/2025-02-26")
    s.add_argument("b", help="the snapshot to compare with A")
    s = csub.add_parser("scale", help="write a what-if copy with every error scaled (never overwrites)")
    s.add_argument("device", help="snapshot reference, e.g. ibm_torino or ibm_torino/2025-02-26")
    s.add_argument("factor", type=float, help="error multiplier, e.g. 2 (T1/T2 are divided by it)")
    s.add_argument("--out", required=True, help="new .json file outside calibration/")
    s = csub.add_parser("drift", help="write a dated series of drifted what-if snapshots (never overwrites)",
                        description="Write STEPS snapshots of DEVICE drifted by the [clients.drift] model (an "
                        "Ornstein-Uhlenbeck process per figure), dated one day apart, to OUT/<device>/<date>.json.")
    s.add_argument("device", help="snapshot reference, e.g. ibm_torino or ibm_torino/2025-02-26")
    s.add_argument("--sigma", type=float, required=True, help="relative spread: stationary std of log(figure / snapshot's)")
    s.add_argument("--tau", type=float, default=5.0, help="correlation time in steps (default 5)")
    s.add_argument("--common", type=float, default=0.0, help="share of the variance common to the whole device (default 0)")
    s.add_argument("--steps", type=int, default=10, help="snapshots to write, step 0 first (default 10)")
    s.add_argument("--recalibrate-every", type=int, default=0, help="steps between resets to the snapshot (default 0: never)")
    s.add_argument("--seed", type=int, default=0, help="seed of the drift (a [clients.drift] seed gives the same series)")
    s.add_argument("--noise-scale", type=float, default=1.0, help="scale the snapshot's errors first (as a client's noise_scale)")
    s.add_argument("--out", required=True, help="folder outside calibration/ that receives <device>/<date>.json")
    s = csub.add_parser("heterogeneity", help="transpile a spec's circuit per client: qubits, depth, 2q gates, ESP")
    s.add_argument("spec", help="job or study spec (TOML)")
    p.set_defaults(func=_cmd_calibration)

    p = sub.add_parser("report", help="the table and plot of a run, finished or not",
                       description="Report on a run directory: finished, still running or stopped.")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("watch", help="live terminal view of a run: jobs, spend, rounds",
                       description="Watch a running, finished or crashed run from its directory alone (it locks "
                       "nothing, so it works from another terminal or machine with the directory mounted).")
    p.add_argument("run_dir")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser("dashboard", help="local web dashboard of the runs in a folder (needs qflhw[dashboard])",
                       description="Serve a local dashboard of the runs under RUNS_DIR: live learning curves, "
                       "per-client tables, job timelines, two runs side by side, and a form that starts runs on "
                       "fake devices. Binds 127.0.0.1 unless --host says otherwise.")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of run directories (default: runs)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; the page can start runs)")
    p.set_defaults(func=_cmd_dashboard)

    from qflhw.flower.cli import add_commands as add_flower_commands  # imports no Flower

    add_flower_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.log_level)
    try:
        return args.func(args)
    except QflhwError as err:
        print(f"qflhw: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qflhw: interrupted; a run continues with `qflhw resume RUN_DIR`", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line for the user, the traceback on request
        if os.environ.get("QFLHW_DEBUG"):
            raise
        print(
            f"qflhw: internal error: {type(err).__name__}: {err} (rerun with QFLHW_DEBUG=1 for the traceback "
            "and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
