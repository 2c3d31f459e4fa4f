"""The job key: text that the journal, job tags and the fake provider share, read back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qflhw.devices.base import JobKey
from qflhw.errors import ConfigError

NAMES = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)


def test_key_text_is_the_documented_format():
    key = JobKey("quickstart-seed7", 3, "torino", 5)
    assert str(key) == "quickstart-seed7/r3/torino/s5"
    assert str(JobKey("q", 0, "c", 2, "e")) == "q/r0/c/e2"
    assert key.round_group == "quickstart-seed7/r3"


@given(run=NAMES, round_=st.integers(0, 10_000), client=NAMES, step=st.integers(0, 10_000), phase=st.sampled_from("se"))
def test_parse_reads_back_what_str_writes(run, round_, client, step, phase):
    key = JobKey(run, round_, client, step, phase)
    assert JobKey.parse(str(key)) == key


@pytest.mark.parametrize("text", ["run/r1/client", "run/x1/c/s0", "a/b/r1/c/s0", "run/r1/c/s", ""])
def test_malformed_keys_are_config_errors(text):
    with pytest.raises(ConfigError, match="is not a job key"):
        JobKey.parse(text)


def test_parts_with_slashes_are_refused():
    with pytest.raises(ConfigError, match="free of '/'"):
        JobKey("lab/exp", 0, "c", 0)
