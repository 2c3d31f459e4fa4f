"""TensorBoard scalars, read back with TensorBoard's own reader: every expected tag, one value per
round equal to metrics.csv, also for a run stopped after a round and resumed."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from qflhw.config.spec import load_spec
from qflhw.federation.loop import Federation
from qflhw.federation.runs import resume
from qflhw.federation.tensorboard import TensorBoardHook


class Stop(Exception):
    pass


def test_scalars_per_round_survive_a_stop_and_resume(tmp_path, tiny_spec_text):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(tiny_spec_text.replace("rounds = 2", "rounds = 3"))
    spec = load_spec(spec_path)
    run_dir, tb = tmp_path / "run", tmp_path / "tb"
    fed = Federation(spec, run_dir, progress=False)
    fed.open_journal()
    (run_dir / "spec.toml").write_text(spec_path.read_text())
    hook = TensorBoardHook(fed, tb)

    def stop_after_round_1(f, r):  # noqa: ANN001
        if r == 1:
            raise Stop  # round 1 is checkpointed and already written to TensorBoard

    fed.round_hooks += [hook, stop_after_round_1]
    with pytest.raises(Stop):
        fed.run()
    hook.close()
    resume(run_dir, tensorboard=tb)  # starts at round 2 and writes rounds 0 and 1 again

    assert len(list((tb / "run").glob("events.out.tfevents.*"))) == 2
    acc = EventAccumulator(str(tb / "run"), size_guidance={"scalars": 0})  # 0: keep every value
    acc.Reload()
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected: dict[str, list[tuple[int, float]]] = {}
    for r in range(3):
        mine = [row for row in rows if int(row["round"]) == r]
        for tag, value in (("global/test_accuracy", mine[0]["global_test_accuracy"]), ("global/test_loss", mine[0]["global_test_loss"]),
                           ("global/shots", sum(int(m["shots"]) for m in mine)),
                           ("global/cost_usd", sum(float(m["cost_usd"]) for m in mine))):  # fmt: skip
            expected.setdefault(tag, []).append((r, float(value)))
        for m in mine:
            for field in ("loss", "shots", "cost_usd", "esp"):
                expected.setdefault(f"client/{m['client']}/{field}", []).append((r, float(m[field])))
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [0, 1, 2], tag  # each round once: the stopped run's tail was purged
        np.testing.assert_array_equal([v for _, v in got], np.float32([v for _, v in points]), err_msg=tag)  # stored as float32
