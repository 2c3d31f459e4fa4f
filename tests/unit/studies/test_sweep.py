"""Studies: sweep expansion counted by hand, bad keys, a tiny study end to end, resume by cell."""

from __future__ import annotations

import csv
import json
import tomllib

import pytest

from qflhw.cli import main
from qflhw.errors import ConfigError
from qflhw.studies import sweep as study_mod
from qflhw.studies.sweep import expand, load_study
from tests.helpers import TINY_SPEC

BASE = TINY_SPEC  # 2 clients on fake_fez / fake_kyiv, 2 rounds, 8 rows each


def _raw(sweep: str) -> dict:
    return tomllib.loads(BASE + "\n" + sweep)


def test_cartesian_product_counted_by_hand():
    s = expand(_raw("""
[sweep]
seed = [1, 2, 3]
aggregation.method = ["fedavg", "noise-aware"]
clients.b.noise_scale = [1, 2, 4]
"""))
    assert s.keys == ("seed", "aggregation.method", "clients.b.noise_scale")
    assert len(s.cells) == 3 * 2 * 3
    assert len({c.name for c in s.cells}) == 18
    last = s.cells[-1]
    assert last.values == {"seed": 3, "aggregation.method": "noise-aware", "clients.b.noise_scale": 4}
    assert last.spec.seed == 3 and last.spec.aggregation.method == "noise-aware"
    scales = {c.name: c.noise_scale for c in last.spec.clients}
    assert scales == {"a": 1.0, "b": 4.0}  # only the named client
    # cells that differ only by seed share a setting: 6 settings of 3 seeds
    assert len({c.setting for c in s.cells}) == 6


def test_every_client_key_client_sets_and_bare_dates():
    s = expand(_raw("""
[sweep]
clients.noise_scale = [0.5, 4]
data.partition = ["iid", "dirichlet"]
clients.calibration = ["2025-02-26"]

[[sweep.client_set.eagle]]
name = "x"
device = "fake_brisbane"

[[sweep.client_set.heron]]
name = "x"
device = "fake_torino"

[[sweep.client_set.heron]]
name = "y"
device = "fake_fez"
"""))
    assert len(s.cells) == 2 * 2 * 1 * 2
    heron = [c for c in s.cells if c.values["client_set"] == "heron" and c.values["clients.noise_scale"] == 4][0]
    assert [(c.name, c.device, c.noise_scale) for c in heron.spec.clients] == [
        ("x", "fake_torino", 4.0),
        ("y", "fake_fez", 4.0),
    ]
    # a bare date is that day's snapshot of the device each profile twins
    assert [c.calibration for c in heron.spec.clients] == ["ibm_torino/2025-02-26", "ibm_fez/2025-02-26"]
    assert {c.spec.data.partition for c in s.cells} == {"iid", "dirichlet"}


def test_named_client_wins_and_dates_follow_the_swept_device():
    s = expand(_raw("""
[sweep]
clients.calibration = ["2025-02-26"]
clients.b.noise_scale = [4]
clients.noise_scale = [2]
clients.a.device = ["fake_torino"]
"""))
    (cell,) = s.cells
    a, b = cell.spec.clients
    assert (a.noise_scale, b.noise_scale) == (2.0, 4.0)
    assert (a.device, a.calibration) == ("fake_torino", "ibm_torino/2025-02-26")
    assert b.calibration == "ibm_kyiv/2025-02-26"


@pytest.mark.parametrize(
    "sweep, key",
    [
        ("aggregation.methd = ['fedavg']", "aggregation.methd"),
        ("colour = [1, 2]", "colour"),
        ("clients.zed.noise_scale = [2]", "clients.zed.noise_scale"),
        ("clients.colour = [2]", "clients.colour"),
        ("training = [1]", "training"),
        ("seed = 4", "seed"),
    ],
)
def test_bad_sweep_key_is_one_line_naming_file_and_key(tmp_path, sweep, key):
    path = tmp_path / "study.toml"
    path.write_text(BASE + "\n[sweep]\n" + sweep + "\n")
    with pytest.raises(ConfigError) as err:
        load_study(path)
    msg = str(err.value)
    assert str(path) in msg and repr(key) in msg and "\n" not in msg


def test_bad_sweep_value_names_the_cell(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(BASE + "\n[sweep]\naggregation.method = ['fedavg', 'fedmagic']\n")
    with pytest.raises(ConfigError, match=r"study.toml \(sweep cell aggregation.method=fedmagic\).*aggregation.method"):
        load_study(path)


def test_cli_bad_key_exit_2_and_run_refuses_a_study(tmp_path, capsys):
    path = tmp_path / "study.toml"
    path.write_text(BASE + "\n[sweep]\nnonsense = [1]\n")
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'nonsense'" in err and str(path) in err and "\n" not in err
    assert not (tmp_path / "out").exists()
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "qflhw study" in capsys.readouterr().err


STUDY = BASE.replace("max_train_per_client = 8", "max_train_per_client = 4") + """
[sweep]
aggregation.method = ["fedavg", "noise-aware"]
"""


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    base = tmp_path_factory.mktemp("study")
    spec = base / "study.toml"
    spec.write_text(STUDY)
    out = base / "out"
    assert main(["study", str(spec), "--out", str(out), "--workers", "2"]) == 0
    return spec, out


def _rows(out):
    with open(out / "study.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_tiny_study_end_to_end(finished_study, capsys):
    _, out = finished_study
    rows = _rows(out)
    assert len(rows) == 2 * 2 * 2  # cells x rounds x clients
    assert {r["aggregation.method"] for r in rows} == {"fedavg", "noise-aware"}
    assert all(r["aggregation"] == r["aggregation.method"] for r in rows)
    for name in ("summary.md", "accuracy_per_round.png", "accuracy_vs_noise.png", "esp_vs_accuracy.png"):
        assert (out / name).is_file(), name
    table = (out / "summary.md").read_text()
    assert "| fedavg |" in table and "| noise-aware |" in table
    assert len(list((out / "cells").iterdir())) == 2


def test_rerun_skips_finished_cells_and_reruns_an_unfinished_one(finished_study, monkeypatch, capsys):
    spec, out = finished_study
    calls = []
    real = study_mod.run_cell

    def counting(spec_json, cell_dir):
        calls.append(cell_dir)
        return real(spec_json, cell_dir)

    monkeypatch.setattr(study_mod, "run_cell", counting)
    assert main(["study", str(spec), "--out", str(out), "--workers", "1"]) == 0
    assert calls == []
    assert len(_rows(out)) == 8

    cells = sorted((out / "cells").iterdir())
    kept = {p.name: p.read_bytes() for p in cells[0].iterdir() if p.is_file()}
    # as if the run stopped mid-cell, after a round: its summary.json is a partial one
    partial = json.loads((cells[1] / "summary.json").read_text()) | {"finished": False}
    (cells[1] / "summary.json").write_text(json.dumps(partial))
    assert len(study_mod.tidy_rows(load_study(spec), out)) == 8 - 4  # an unfinished cell is not in the tidy table
    assert main(["study", str(spec), "--out", str(out), "--workers", "1"]) == 0
    assert calls == [str(cells[1])]
    assert {p.name: p.read_bytes() for p in cells[0].iterdir() if p.is_file()} == kept
    assert json.loads((cells[1] / "summary.json").read_text())["finished"] is True
    assert len(_rows(out)) == 8
