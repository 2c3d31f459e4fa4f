"""The command line's calibration reports (runs in-process: cheap commands, no network)."""

from __future__ import annotations

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.channels import flagged_gates
from qflhw.cli import main


def test_calibration_show_fidelity_lists_modelled_optional_and_left_out_terms(capsys):
    assert main(["calibration", "show", "ibm_brisbane", "--fidelity"]) == 0
    out = capsys.readouterr().out
    cal = cal_mod.load("ibm_brisbane")
    flagged = flagged_gates(cal)
    assert f"flagged     {len(flagged)} gates" in out
    ecr = [c for c in flagged if c.name == "ecr"]
    assert f"ecr   {len(ecr):4d} of" in out
    for term in ("gates", "idle", "readout", "zz_crosstalk", "correlated_readout", "channel_correction", "left out:", "leakage"):
        assert term in out
    assert "no zz figures in this snapshot" in out


def test_calibration_show_fidelity_of_iqm_names_the_virtual_rz(capsys):
    assert main(["calibration", "show", "iqm_garnet", "--fidelity"]) == 0
    out = capsys.readouterr().out
    assert "virtual" in out and "flagged     none" in out
