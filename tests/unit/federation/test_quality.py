"""The heterogeneity table reports what the run's clients actually use."""

from __future__ import annotations

from qflhw.cli import main
from qflhw.federation.quality import client_quality


def test_heterogeneity_reports_what_the_run_uses(tiny_spec, tmp_path, capsys):
    from qflhw.config.spec import load_spec
    from qflhw.federation.loop import Federation

    spec = load_spec(tiny_spec)
    fed = Federation(spec, tmp_path / "run", progress=False)
    rows = client_quality(spec)
    assert [r.client for r in rows] == ["a", "b"]
    for r, c in zip(rows, fed.clients):
        tc = c.evaluator.transpiled
        assert (r.esp, r.physical_qubits, r.depth, r.two_qubit_gates) == (
            tc.esp, tc.physical_qubits, tc.depth, tc.two_qubit_gates
        )
    assert main(["calibration", "heterogeneity", str(tiny_spec)]) == 0
    out = capsys.readouterr().out
    assert "fake_fez" in out and f"{rows[0].esp:.3f}" in out
