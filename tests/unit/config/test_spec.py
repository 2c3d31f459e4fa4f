"""Spec validation: each bad field fails before any work with one line naming file and field."""

from __future__ import annotations

import pytest

from qflhw.config.spec import load_spec
from qflhw.errors import ConfigError
from tests.helpers import ROOT


def _write(tmp_path, text):
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def test_tiny_spec_is_valid(tiny_spec):
    spec = load_spec(tiny_spec)
    assert [c.name for c in spec.clients] == ["a", "b"]
    assert spec.client_setting(spec.clients[0], "shots") == 200


@pytest.mark.parametrize(
    "change, field",
    [
        (("rounds = 2", "rounds = 0"), "rounds"),
        (("rounds = 2", "rounds = 2\nroundz = 3"), "roundz"),
        (("shots = 200", "shots = -5"), "training.shots"),
        (("qubits = 2", "qubits = 'four'"), "model.qubits"),
        (('dataset = "digits"', 'dataset = "digits"\npartition = "random"'), "data.partition"),
        (('name = "b"', 'name = "a"'), "clients"),
        (("[training]", "[budget]\nmax_usd = -1\n[training]"), "budget.max_usd"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path, tiny_spec_text, change, field):
    path = _write(tmp_path, tiny_spec_text.replace(*change, 1))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg and "\n" not in msg


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(_write(tmp_path, "rounds = = 2"))
    with pytest.raises(ConfigError, match="no such spec file"):
        load_spec(tmp_path / "nope.toml")


JOBS = sorted((ROOT / "jobs").glob("*.toml"))


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_shipped_specs_validate_and_name_known_devices(path):
    """Every spec in jobs/ parses (studies through their expansion) and each client's device has a profile."""
    from qflhw.config.profiles import load_profile
    from qflhw.studies.sweep import load_study

    specs = [cell.spec for cell in load_study(path).cells] if "[sweep]" in path.read_text() else [load_spec(path)]
    assert specs
    for spec in specs:
        for client in spec.clients:
            assert load_profile(client.device).name == client.device


@pytest.mark.parametrize("field, value", [("name", "lab/exp 1"), ("name", ""), ("clients.0.name", "a/b")])
def test_names_that_would_break_job_keys_are_one_line_errors(tiny_spec_text, field, value):
    """Spec and client names go into idempotency keys, file names and job tags: no '/', no spaces."""
    import tomllib

    from qflhw.config.spec import parse_spec

    raw = tomllib.loads(tiny_spec_text)
    if field == "name":
        raw["name"] = value
    else:
        raw["clients"][0]["name"] = value
    with pytest.raises(ConfigError) as info:
        parse_spec(raw, "job.toml")
    msg = str(info.value)
    assert msg.startswith(f"job.toml: field {field}:") and "\n" not in msg


@pytest.mark.parametrize(
    "change, field",
    [
        (('device = "fake_fez"', 'device = "fake_fez"\ncalibration = []'), "calibration"),
        (('device = "fake_fez"', 'device = "fake_fez"\n[clients.drift]\nsigma = 0'), "drift.sigma"),
        (('device = "fake_fez"', 'device = "fake_fez"\n[clients.drift]\nsigma = 0.1\ntau = 3'), "drift.tau"),
        (("shots = 200", 'shots = 200\n[training.lr_schedule]\nkind = "cosine"'), "training.lr_schedule.kind"),
        (("shots = 200", "shots = 200\n[training.lr_schedule]\nnegative_scale = -1"), "training.lr_schedule.negative_scale"),
        (("[training]", '[scheduling]\nmethod = "sca"\n[training]'), "scheduling.method"),
        (("[training]", "[scheduling]\nmin_power_dbm = 30\n[training]"), "scheduling"),
        (("[training]", '[aggregation]\nmethod = "spoqfl"\nskip_below = 1.5\n[training]'), "aggregation.skip_below"),
    ],
)
def test_new_tables_name_file_and_field(tmp_path, tiny_spec_text, change, field):
    path = _write(tmp_path, tiny_spec_text.replace(*change, 1))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg and "\n" not in msg


def test_new_tables_default_off(tiny_spec):
    """Specs written before drift, SpoQFL, LR schedules and scheduling mean what they meant."""
    spec = load_spec(tiny_spec)
    assert spec.scheduling is None and spec.training.lr_schedule.kind == "constant"
    assert all(not c.calibration_changes and c.drift is None for c in spec.clients)


def test_drift_and_series_are_refused_for_real_qpus(tmp_path, tiny_spec_text):
    from qflhw.federation.assembly import calibration_schedule

    text = tiny_spec_text.replace('device = "fake_kyiv"', 'device = "ibm_kyiv"\n[clients.drift]\nsigma = 0.2')
    spec = load_spec(_write(tmp_path, text))
    with pytest.raises(ConfigError, match="client b: calibration series and \\[clients.drift\\] apply to fake devices only"):
        calibration_schedule(spec, spec.clients[1])
def test_twin_options_merge_a_clients_keys_over_the_profiles(tmp_path, tiny_spec_text):
    from qflhw.config.spec import TwinSpec

    profile = TwinSpec(idle_noise=False, zz_crosstalk=True)
    client = TwinSpec(zz_crosstalk=False)
    merged = profile.merged(client)
    assert (merged.idle_noise, merged.zz_crosstalk, merged.correlated_readout) == (False, False, False)
    assert profile.merged(None) is profile
    text = tiny_spec_text.replace('device = "fake_kyiv"', 'device = "fake_kyiv"\ntwin = { idle_noise = false }')
    spec = load_spec(_write(tmp_path, text))
    assert spec.clients[1].twin == TwinSpec(idle_noise=False) and spec.clients[0].twin is None
    bad = tiny_spec_text.replace('device = "fake_kyiv"', 'device = "fake_kyiv"\ntwin = { idle_nosie = false }')
    with pytest.raises(ConfigError, match="idle_nosie"):
        load_spec(_write(tmp_path, bad))


def test_twin_table_belongs_to_fake_profiles_only(tmp_path):
    from qflhw.config.profiles import load_profile

    fake = tmp_path / "my_twin.toml"
    fake.write_text('provider = "fake"\ndevice = "ibm_fez"\ncalibration = "ibm_fez/latest"\nqubits = 156\n[twin]\nzz_crosstalk = true\n')
    assert load_profile(fake).twin.zz_crosstalk
    real = tmp_path / "my_qpu.toml"
    real.write_text('provider = "ibm"\ndevice = "ibm_fez"\nqubits = 156\n[twin]\nidle_noise = false\n')
    with pytest.raises(ConfigError, match=r"\[twin\] options are for fake devices only"):
        load_profile(real)
