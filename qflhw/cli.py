"""The ``qflhw`` command line.

Every user error ends in one line on stderr naming the file, field, client or device and the
fix, with exit status 2; nothing already written is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from qflhw.calibration import snapshot as cal_mod
from qflhw.errors import QflhwError


def _cmd_run(args: argparse.Namespace) -> int:
    from qflhw.federation.outputs import summary_table
    from qflhw.federation.runs import keep_spec, prepare, run

    if args.engine == "flower-sim":  # the same rounds in Flower's simulation engine (qflhw[flower])
        from qflhw.flower.simulation import run_simulation

        spec, run_dir, source = prepare(args.spec, args.out)
        run_dir.mkdir(parents=True, exist_ok=True)
        keep_spec(spec, run_dir, source)
        summary = run_simulation(spec, args.spec, run_dir, progress=not args.quiet)
    else:
        result = run(args.spec, args.out, progress=not args.quiet)
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


def _cmd_resume(args: argparse.Namespace) -> int:
    from qflhw.federation.outputs import summary_table
    from qflhw.federation.runs import reopen

    fed = reopen(args.run_dir, progress=not args.quiet)
    print(f"resuming {args.run_dir} at round {fed.next_round} of {fed.spec.rounds}", file=sys.stderr)
    print(summary_table(fed.run()))
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
    print(f"{'profile':<24} {'provider':<8} {'qubits':>6}  {'price':<34} calibration")
    for p in rows:
        price = []
        if p.price.per_task:
            price.append(f"${p.price.per_task}/task")
        if p.price.per_shot:
            price.append(f"${p.price.per_shot}/shot")
        if p.price.per_second:
            price.append(f"${p.price.per_second}/s")
        print(f"{p.name:<24} {p.provider:<8} {p.qubits:>6}  {(' + '.join(price) or 'free'):<34} {p.calibration or '-'}")
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
    if args.action == "export":
        from qflhw.calibration.qiskit_import import from_fake_backend_name

        path = from_fake_backend_name(args.device).save(Path(args.root) if args.root else None)
        print(f"wrote {path}")
        return 0
    if args.action in ("diff", "scale", "heterogeneity"):
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
    else:
        from qflhw.federation.quality import client_quality, format_quality
        from qflhw.studies.sweep import load_base_spec

        print(format_quality(client_quality(load_base_spec(args.spec))))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from qflhw.federation.outputs import plot_learning_curve, read_metrics, summary_table

    run = Path(args.run_dir)
    if not (run / "summary.json").is_file() or not (run / "metrics.csv").is_file():
        raise QflhwError(f"{run}: not a finished run directory (needs summary.json and metrics.csv)")
    summary = json.loads((run / "summary.json").read_text())
    plot_learning_curve(run / "learning_curve.png", read_metrics(run / "metrics.csv"), summary["run_id"])
    print(summary_table(summary))
    print(f"re-drew {run / 'learning_curve.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="qflhw", description="Quantum federated learning on real QPUs and their fake twins.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a federated experiment from a job spec", description="Run a job spec.")
    p.add_argument("spec", help="job spec (TOML), e.g. jobs/quickstart.toml")
    p.add_argument("--out", help="run directory (default: <spec.output>/<name>-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["inprocess", "flower-sim"], default="inprocess",
                   help="inprocess (default): clients train in threads here; flower-sim: in Flower's simulation "
                   "engine (needs qflhw[flower]); for machines of their own see `qflhw flower`")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("estimate", help="jobs, shots and USD a job spec will cost (offline)",
                       description="Price a job spec per client, per round and for the run, from the device "
                       "profiles' prices and calibration snapshots; needs no credentials or network.")
    p.add_argument("spec", help="job spec (TOML), e.g. jobs/ibm-template.toml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_estimate)

    p = sub.add_parser("resume", help="continue a stopped run", description="Continue a stopped run: finished "
                       "rounds are kept, jobs already sent are fetched, not sent again.")
    p.add_argument("run_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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
        help="list, show, export, diff or scale snapshots; per-client heterogeneity",
        description="Calibration snapshots.",
    )
    csub = p.add_subparsers(dest="action", required=True)
    csub.add_parser("list", help="devices and snapshot dates")
    s = csub.add_parser("show", help="summary of one snapshot")
    s.add_argument("device", help="<device>[/<date>|/latest], e.g. ibm_torino")
    s.add_argument("--fidelity", action="store_true",
                   help="what a fake twin of it models, from which figures, which gates it cannot reproduce, what it leaves out")
    s = csub.add_parser("export", help="write a snapshot from a qiskit-ibm-runtime fake backend")
    s.add_argument("device", help="fake backend name, e.g. FakeTorino or torino")
    s.add_argument("--root", help="calibration folder (default: the project's calibration/)")
    s = csub.add_parser("diff", help="what changed between two snapshots")
    s.add_argument("a", help="<device>/<date>, <device> (latest) or a .json path, e.g. ibm_torino/2025-02-26")
    s.add_argument("b", help="the snapshot to compare with A")
    s = csub.add_parser("scale", help="write a what-if copy with every error scaled (never overwrites)")
    s.add_argument("device", help="snapshot reference, e.g. ibm_torino or ibm_torino/2025-02-26")
    s.add_argument("factor", type=float, help="error multiplier, e.g. 2 (T1/T2 are divided by it)")
    s.add_argument("--out", required=True, help="new .json file outside calibration/")
    s = csub.add_parser("heterogeneity", help="transpile a spec's circuit per client: qubits, depth, 2q gates, ESP")
    s.add_argument("spec", help="job or study spec (TOML)")
    p.set_defaults(func=_cmd_calibration)

    p = sub.add_parser("report", help="re-draw plots and the table of a run", description="Report on a run directory.")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_report)

    from qflhw.flower.cli import add_commands as add_flower_commands  # imports no Flower

    add_flower_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
