"""Bad input never hurts: one line naming file/field/client and the fix, exit 2, nothing touched."""

from __future__ import annotations

import json
import shutil
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qflhw.cli import main
from qflhw.config.spec import parse_spec
from qflhw.errors import ConfigError


def _corrupt_calibration(tmp_path):
    p = tmp_path / "corrupt.json"
    p.write_text('{"schema": "qflhw.calibration/1", "device": "x", ')
    return p


def _incomplete_calibration(tmp_path):
    from qflhw.calibration import snapshot as calibration

    raw = json.loads(calibration.resolve("ibm_fez").read_text())
    del raw["qubits"][3]["prob_meas0_prep1"]
    p = tmp_path / "incomplete.json"
    p.write_text(json.dumps(raw))
    return p


OWN = "tests.unit.federation.custom_models"  # models of one's own, good and bad

CASES = {
    "not toml": (lambda s, t: "rounds = = 1", ["not valid TOML"]),
    "misspelled section": (lambda s, t: s.replace("[training]", "[trainig]"), ["trainig", "Extra inputs"]),
    "unknown device": (lambda s, t: s.replace("fake_kyiv", "fake_atlantis"), ["fake_atlantis", "known:"]),
    "corrupt calibration": (
        lambda s, t: s.replace('device = "fake_kyiv"', f'device = "fake_kyiv"\ncalibration = "{_corrupt_calibration(t)}"'),
        ["corrupt.json", "not valid JSON"],
    ),
    "incomplete calibration": (
        lambda s, t: s.replace('device = "fake_kyiv"', f'device = "fake_kyiv"\ncalibration = "{_incomplete_calibration(t)}"'),
        ["incomplete.json", "qubits.3.prob_meas0_prep1"],
    ),
    "missing data file": (lambda s, t: s.replace('"digits"', f'"{t}/nowhere.csv"'), ["nowhere.csv"]),
    "negative shots": (lambda s, t: s.replace("shots = 200", "shots = -1"), ["training.shots", "greater than or equal to 0"]),
    "negative budget": (lambda s, t: s + "\n[budget]\nmax_usd = -5\n", ["budget.max_usd"]),
    "own circuit: missing module": (
        lambda s, t: s.replace("layers = 1", 'circuit = "nowhere_pkg.models:circuit"'),
        ["model.circuit = 'nowhere_pkg.models:circuit'", "no module named 'nowhere_pkg'"],
    ),
    "own circuit: missing function": (
        lambda s, t: s.replace("layers = 1", f'circuit = "{OWN}:nothing_here"'),
        ["model.circuit", "has no 'nothing_here'"],
    ),
    "own circuit: wrong return type": (
        lambda s, t: s.replace("layers = 1", f'circuit = "{OWN}:returns_a_number"'),
        ["model.circuit", "returned int", "QuantumCircuit"],
    ),
    "own circuit: unnamed parameters": (
        lambda s, t: s.replace("layers = 1", f'circuit = "{OWN}:unnamed_parameters"'),
        ["model.circuit", "'theta'", "ParameterVector('w', m)"],
    ),
    "own circuit: PennyLane without weight shapes": (
        lambda s, t: s.replace("layers = 1", f'circuit = "{OWN}:pennylane_without_shapes"'),
        ["model.circuit", "without its weight shapes", "TorchLayer"],
    ),
    "own circuit: no parameter-shift rule": (
        lambda s, t: s.replace("layers = 1", f'circuit = "{OWN}:no_shift_rule"'),
        ["drives gate 'u'", "training.gradient = 'spsa'"],
    ),
    "own circuit: not an entry point": (
        lambda s, t: s.replace("layers = 1", 'circuit = "models.py"'),
        ["model.circuit", "'package.module:function'"],
    ),
    "own head: wrong width": (
        lambda s, t: s.replace("layers = 1", f'layers = 1\nhead = "{OWN}:head_with_wrong_width"'),
        ["model.head", "it must give (1, 2)"],
    ),
    "circuit wider than device": (
        lambda s, t: s.replace("qubits = 2", "qubits = 24").replace("fake_kyiv", "fake_iqm_garnet"),
        ["needs 24 qubits", "iqm_garnet has 20"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_line_exit_2_nothing_written(case, tmp_path, tiny_spec_text, capsys):
    make, expected = CASES[case]
    spec = tmp_path / "spec.toml"
    spec.write_text(make(tiny_spec_text, tmp_path))
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qflhw: error: ") and "\n" not in err, err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert not out.exists()


def test_existing_run_directory_is_never_modified(tmp_path, tiny_spec_text, capsys):
    out = tmp_path / "old-run"
    out.mkdir()
    (out / "metrics.csv").write_text("precious\n")
    spec = tmp_path / "spec.toml"
    spec.write_text(tiny_spec_text)
    assert main(["run", str(spec), "--out", str(out)]) == 2
    assert (out / "metrics.csv").read_text() == "precious\n" and len(list(out.iterdir())) == 1
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_shipped_calibrations_are_never_overwritten(tmp_path, capsys):
    from qflhw.calibration import snapshot as calibration

    src = calibration.resolve("ibm_kyiv")
    root = tmp_path / "cal"
    (root / "ibm_kyiv").mkdir(parents=True)
    shutil.copy(src, root / "ibm_kyiv" / src.name)
    before = (root / "ibm_kyiv" / src.name).read_bytes()
    # the shipped file is a version 1 export (readout clipped at 0.5); today's exporter keeps the
    # figures as measured: other figures for that day, so the export is added beside it
    assert main(["calibration", "export", "kyiv", "--root", str(root)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (root / "ibm_kyiv" / src.name).read_bytes() == before
    files = sorted(p.name for p in (root / "ibm_kyiv").iterdir())
    assert len(files) == 2 and files[1].startswith(src.stem + "T") and files[1].endswith("Z.json")
    added = (root / "ibm_kyiv" / files[1]).read_bytes()
    # the same figures again: the stored snapshot is kept as it is (its hash seeds shot noise)
    assert main(["calibration", "export", "kyiv", "--root", str(root)]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert sorted(p.name for p in (root / "ibm_kyiv").iterdir()) == files
    assert (root / "ibm_kyiv" / files[1]).read_bytes() == added and (root / "ibm_kyiv" / src.name).read_bytes() == before


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True), st.text(string.printable, max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_keys = st.sampled_from(["name", "seed", "rounds", "data", "model", "training", "clients", "budget", "aggregation", "resilience", "bogus"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=6))
def test_spec_loader_fuzz_only_config_errors(raw):
    try:
        parse_spec(raw, "fuzz.toml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.toml") and "\n" not in str(err)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_cli_never_shows_a_traceback_for_any_spec_text(tmp_path_factory, text):
    d = tmp_path_factory.mktemp("fuzz")
    spec = d / "spec.toml"
    spec.write_text(text)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", str(spec), "--out", str(d / "out"), "--quiet"])
    assert code == 2 and "Traceback" not in err.getvalue() and err.getvalue().count("\n") == 1
