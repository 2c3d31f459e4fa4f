"""What a fake twin of one snapshot models, from which figures, and what it leaves out.

``qflhw calibration show DEVICE --fidelity`` prints :func:`fidelity_report`: the noise terms
(gate channels, flagged gates, broken gates and qubits, idle relaxation, readout, virtual rz),
the optional terms and whether the snapshot has the figures they need, and the physics no twin
here simulates. The numbers come from :mod:`qflhw.calibration.channels` and the snapshot itself.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from qflhw.calibration.channels import ChannelTable
from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import native_gates
from qflhw.config.spec import TwinSpec

LEFT_OUT = (
    "leakage out of the qubit subspace",
    "coherent errors (over-rotation, miscalibrated phases): gate noise is depolarizing + relaxation",
    "thermal excited population (zero temperature, as Aer's from_backend)",
    "T2* vs echo T2: idle dephasing uses the reported T2 (IBM reports echo T2; free idling dephases faster)",
    "crosstalk during gates, and ZZ while only one of two neighbours idles",
    "relaxation during readout beyond the calibrated assignment probabilities",
    "dynamical decoupling and timing-constraint alignment (not inserted)",
    "drift within the day: one snapshot is one noise model (swap snapshots to model drift)",
)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def fidelity_report(cal: Calibration, twin: TwinSpec | None = None) -> str:
    """The report (module docstring) for a twin of ``cal`` with the ``[twin]`` options ``twin``."""
    twin = twin or TwinSpec()
    table = ChannelTable.of(cal, correct=twin.channel_correction)
    usable = [g for g in cal.gates if cal.usable(g)]
    broken = [g for g in cal.gates if g.error >= 1.0]
    off_gates = [g for g in cal.gates if not g.operational]
    off_qubits = [i for i, q in enumerate(cal.qubits) if not q.operational]
    with_t = sum(1 for q in cal.qubits if q.t1)
    options = ", ".join(f"{k} {_on(getattr(twin, k))}" for k in TwinSpec.model_fields)
    lines = [
        f"fidelity of a twin of {cal.device} {cal.date}; twin options: {options}",
        "",
        "modelled:",
        "  gates       ideal gate, then depolarizing + T1/T2 relaxation for its duration, the depolarizing part chosen so the",
        "              average gate fidelity is 1 - error (Aer's basic_device_gate_errors); from error and duration of",
        f"              {len(usable)} usable gates and T1/T2 of {with_t} of {cal.num_qubits} qubits",
    ]
    flagged = table.flagged()
    if flagged:
        by: dict[str, list] = defaultdict(list)
        for c in flagged:
            by[c.name].append(c)
        total: dict[str, int] = defaultdict(int)
        for g in usable:
            if g.error > 0 and g.duration > 0:
                total[g.gate] += 1
        lines.append(
            f"  flagged     {len(flagged)} gates whose relaxation alone is worse than calibrated (T1/T2 and error disagree):"
        )
        for name, chans in sorted(by.items()):
            worst = max(chans, key=lambda c: c.relaxation_error - c.calibrated_error)
            gap = np.array([c.relaxation_error - c.calibrated_error for c in chans])
            lines.append(
                f"              {name:5s} {len(chans):4d} of {total[name]:4d}, relaxation error above the calibrated error by median"
                f" {np.median(gap):.1e}, max {gap.max():.1e} on {list(worst.qubits)}"
            )
        how = (
            "relax for the shorter time that reproduces the calibration (channel_correction on)"
            if twin.channel_correction
            else "simulated as relaxation only (Aer's channel); ESP uses that channel's fidelity"
        )
        lines.append(f"              {how}")
    else:
        lines.append("  flagged     none: every gate's calibration is reproduced exactly")
    lines.append(
        f"  broken      {len(broken)} gates calibrated with error 1, {len(off_gates)} gates and {len(off_qubits)} qubits flagged"
        " non-operational: left out of layouts and routes"
    )
    dt = f"{cal.dt * 1e9:.3g} ns" if cal.dt else "none reported, 1 fs used"
    lines.append(
        f"  idle        T1/T2 relaxation in every idle window of the ALAP schedule [{_on(twin.idle_noise)}]; durations from the"
        f" gates and readout_length, sample time {dt}"
    )
    ro = np.array([q.readout_error for q in cal.qubits])
    above = int(np.sum([max(q.prob_meas1_prep0, q.prob_meas0_prep1) > 0.5 for q in cal.qubits]))
    lines.append(
        f"  readout     asymmetric assignment matrix per qubit from prob_meas1_prep0 / prob_meas0_prep1, as measured:"
        f" median error {np.median(ro):.2e}, {above} qubits above 0.5, {len(cal.readout_outliers())} above twice the median"
        " (measured on only when nothing else fits)"
    )
    if "rz" in native_gates(cal, virtual_rz=twin.virtual_rz):
        virtual = "rz" not in cal.native_gates
        lines.append(
            "  rz          virtual (frame change: no error, no time)"
            + ("; added next to the r native, as IQM's compiler does [virtual_rz on]" if virtual else "")
        )
    lines += [
        "",
        "optional (off unless switched on in a profile's or client's [twin] table):",
        f"  channel_correction  [{_on(twin.channel_correction)}] flagged gates relax for the time that reproduces their error"
        f" ({len(flagged)} gates here)",
        f"  zz_crosstalk        [{_on(twin.zz_crosstalk)}] conditional phase of coupled qubits idling together: "
        + (f"{len(cal.zz)} pairs with a zz figure in this snapshot" if cal.zz else "no zz figures in this snapshot, so nothing to add"),
        f"  correlated_readout  [{_on(twin.correlated_readout)}] joint two-qubit assignment matrices: "
        + (
            f"{len(cal.readout_pairs)} pairs in this snapshot"
            if cal.readout_pairs
            else "none in this snapshot, so per-qubit matrices only"
        ),
        "",
        "left out:",
        *(f"  - {item}" for item in LEFT_OUT),
    ]
    return "\n".join(lines)
