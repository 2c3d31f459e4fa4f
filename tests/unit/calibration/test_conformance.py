"""Every IBM fake backend qiskit-ibm-runtime ships exports to a snapshot that transpiles.

The conformance check of issue 13: ``qflhw calibration export`` on each ``BackendV2`` in
``qiskit_ibm_runtime.fake_provider`` (one process, each backend once) and the quickstart model
(4 qubits, rot-crx, 1 layer) transpiled at level 3 onto each snapshot's Target: zero failures.
The references are the SDK's own: each backend's Target names the instructions it offers, and
qiskit's ``Target.instruction_supported`` checks every compiled instruction.
"""

from __future__ import annotations

import pytest
from qiskit.circuit.library import get_standard_gate_name_mapping

from qflhw import cli
from qflhw.calibration.qiskit_import import fake_backend_names
from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import to_target
from qflhw.circuits.ansatz import build
from qflhw.circuits.transpile import transpile_for


def test_the_sdk_ships_the_backends_the_issue_names():
    names = fake_backend_names()
    assert len(names) >= 60 and {"FakeKingston", "FakeBoston", "FakePittsburgh", "FakeFez", "FakeTorino"} <= set(names)


def test_every_fake_backend_exports_and_transpiles_the_quickstart_model(tmp_path, capsys, monkeypatch):
    from qflhw.calibration import qiskit_import

    seen: dict[str, set[str]] = {}
    export = qiskit_import.from_qiskit_backend

    def recording(backend, **kw):  # noqa: ANN001, ANN003 - the SDK's own Target names the reference ops
        seen["ops"] = set(backend.target.operation_names)
        return export(backend, **kw)

    monkeypatch.setattr(qiskit_import, "from_qiskit_backend", recording)
    model = build("rot-crx", 4, 1)
    failures, nonstandard = [], {}
    standard = set(get_standard_gate_name_mapping()) | {"measure", "delay", "reset", "if_else", "for_loop",
                                                      "switch_case", "while_loop", "store"}
    for name in fake_backend_names():
        root = tmp_path / name
        try:
            assert cli.main(["calibration", "export", name, "--root", str(root)]) == 0
            path = next(root.rglob("*.json"))
            cal = Calibration.load(path)
            backend_ops = seen.pop("ops")
            odd = sorted(backend_ops - standard)
            if odd:
                nonstandard[name] = odd
                assert all(o not in cal.native_gates for o in odd)
                assert f"skipped non-gate instructions {odd}" in cal.provenance.notes
            target = to_target(cal)
            if cal.num_qubits < 4:
                continue
            tc = transpile_for(model.circuit, cal, target=target, seed=1)
            if "broken gates used" in tc.meta["layout"]:  # e.g. FakeKyoto: every ECR is reported with error 1
                assert all(g.error >= 1 for g in cal.gates if len(g.qubits) == 2 and g.gate != "measure"), name
                target = to_target(cal, broken_gates=True)
            for ci in tc.isa.data:
                qargs = tuple(tc.isa.find_bit(q).index for q in ci.qubits)
                if ci.operation.name != "barrier":
                    assert target.instruction_supported(ci.operation.name, qargs), (ci.operation.name, qargs)
        except Exception as err:  # noqa: BLE001 - collect every failure, report them together
            failures.append(f"{name}: {type(err).__name__}: {err}")
    capsys.readouterr()
    assert failures == []
    # the Heron r2/r3 backends that list measure_2 / reset_2 were among them
    assert {"FakeKingston", "FakeBoston", "FakePittsburgh"} <= set(nonstandard)
    assert "reset_2" in nonstandard["FakeBoston"]


def test_a_snapshot_that_builds_no_target_is_never_saved(tmp_path, monkeypatch):
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    from qflhw.calibration import qiskit_import
    from qflhw.errors import CalibrationError

    def broken(cal, *a, **k):  # noqa: ANN001, ANN002, ANN003
        raise KeyError("no such gate")

    monkeypatch.setattr(qiskit_import, "to_target", broken)
    with pytest.raises(CalibrationError, match="does not build a qiskit Target"):
        qiskit_import.from_qiskit_backend(FakeManilaV2())
    assert cli.main(["calibration", "export", "FakeManilaV2", "--root", str(tmp_path)]) == 2
    assert not list(tmp_path.rglob("*.json"))
