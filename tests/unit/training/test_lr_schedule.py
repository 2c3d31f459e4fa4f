"""Negative learning-rate phases: the sign-switch schedule on torch optimizers, its gradient-norm
trigger, and bit-identical resume (in isolation and through a federated run)."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import torch

from qflhw.config.spec import LRScheduleSpec, parse_spec
from qflhw.errors import ConfigError
from qflhw.training.lr_schedule import SignSwitch, make_scheduler, step
from tests.helpers import TINY_SPEC


def _quadratic(p: torch.Tensor) -> torch.Tensor:
    return ((p - torch.tensor([1.0, -2.0], dtype=torch.float64)) ** 2).sum()


def _run(opt: torch.optim.Optimizer, sched, p: torch.nn.Parameter, n: int) -> list[float]:
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        _quadratic(p).backward()
        opt.step()
        step(sched, [p])
    return lrs


def test_sign_switch_phases_and_sgd_steps_by_hand():
    p = torch.nn.Parameter(torch.tensor([0.0, 0.0], dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_scheduler(opt, LRScheduleSpec(kind="sign-switch", positive_steps=3, negative_steps=2, negative_scale=0.5))
    before = p.detach().clone()
    lrs = _run(opt, sched, p, 11)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, -0.05, -0.05, 0.1, 0.1, 0.1, -0.05, -0.05, 0.1])
    # SGD by hand: p <- p - lr * 2 (p - target), with the scheduled signs
    q = before.numpy().copy()
    for lr in lrs:
        q = q - lr * 2 * (q - np.array([1.0, -2.0]))
    np.testing.assert_allclose(p.detach().numpy(), q, rtol=1e-12)


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.SGD])
def test_a_negative_phase_reverses_any_optimizers_step(optimizer):
    """From the same state, the scheduled step at -s*lr equals minus s times the step torch takes at +lr
    when the step is linear in lr (all of these are)."""
    def fresh():
        p = torch.nn.Parameter(torch.tensor([0.3, 0.7], dtype=torch.float64))
        return p, optimizer([p], lr=0.05)

    p, opt = fresh()
    sched = make_scheduler(opt, LRScheduleSpec(kind="sign-switch", positive_steps=2, negative_steps=1, negative_scale=0.5))
    _run(opt, sched, p, 2)  # now in the negative phase
    assert opt.param_groups[0]["lr"] == pytest.approx(-0.025)
    ref_p, ref_opt = fresh()
    _run(ref_opt, None, ref_p, 2)
    start = p.detach().clone()
    loss_before = float(_quadratic(p.detach()))
    _run(opt, sched, p, 1)
    _run(ref_opt, None, ref_p, 1)
    np.testing.assert_allclose((p.detach() - start).numpy(), -0.5 * (ref_p.detach() - start).numpy(), rtol=1e-9, atol=1e-15)
    assert float(_quadratic(p.detach())) > loss_before  # an ascent step
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # and back to descent


def test_grad_norm_trigger_waits_for_a_flat_landscape():
    f = SignSwitch(2, 1, 1.0, trigger="grad-norm", threshold=0.1)
    signs = []
    for epoch, norm in enumerate([5.0, 5.0, 5.0, 5.0, 0.05, 0.05, 0.05, 3.0, 0.01], start=1):
        f.observe(norm)
        signs.append(f(epoch))
    # positive until at least 2 positive steps AND a small gradient; then one negative step
    assert signs == [1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0]
    assert f.switches == 2
    with pytest.raises(ConfigError, match="negative_scale > 0"):
        SignSwitch(2, 1, 0.0)


def test_constant_schedule_leaves_the_optimizer_alone():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=0.1)
    assert make_scheduler(opt, LRScheduleSpec()) is None


def test_state_dict_resume_is_bit_identical():
    spec = LRScheduleSpec(kind="sign-switch", positive_steps=4, negative_steps=3, negative_scale=0.7, trigger="grad-norm",
                          grad_norm_below=5.0)

    def fresh():
        p = torch.nn.Parameter(torch.tensor([4.0, 3.0], dtype=torch.float64))
        opt = torch.optim.Adam([p], lr=0.3)
        return p, opt, make_scheduler(opt, spec)

    p, opt, sched = fresh()
    _run(opt, sched, p, 20)
    q, qopt, qsched = fresh()
    _run(qopt, qsched, q, 9)  # stop mid-phase
    saved = {"opt": qopt.state_dict(), "sched": qsched.state_dict()}
    r, ropt, rsched = fresh()
    ropt.load_state_dict(saved["opt"])
    rsched.load_state_dict(saved["sched"])
    with torch.no_grad():
        r.copy_(q)
    _run(ropt, rsched, r, 11)
    assert torch.equal(r, p)
    assert rsched.lr_lambdas[0].switches == sched.lr_lambdas[0].switches >= 1


def test_federated_resume_with_negative_phases_is_bit_identical(tmp_path):
    from qflhw.federation.loop import Federation

    raw = tomllib.loads(TINY_SPEC)
    raw["rounds"] = 3
    raw["data"]["max_train_per_client"] = 8  # 2 steps per round: the phases cross round boundaries
    raw["training"].update(shots=0, optimizer="sgd", learning_rate=0.5)
    raw["training"]["lr_schedule"] = {"kind": "sign-switch", "positive_steps": 3, "negative_steps": 2, "negative_scale": 0.5}
    spec = parse_spec(raw)
    whole = Federation(spec, tmp_path / "whole", progress=False)
    whole.run()
    sched = whole.clients[0].scheduler
    assert sched is not None and sched.last_epoch == 6 and sched.lr_lambdas[0].switches == 1
    assert whole.clients[0].optimizer.param_groups[0]["lr"] == pytest.approx(0.5)  # steps 3, 4 were negative; 5 positive
    part = Federation(spec, tmp_path / "part", progress=False)
    part.open_journal()
    part.run_round(0)
    part.checkpoint(0)
    part.next_round = 1
    part.close()
    again = Federation(spec, tmp_path / "part", progress=False)
    assert again.restore() == 1
    again.run()
    np.testing.assert_array_equal(again.params, whole.params)
    # and without the schedule the run is different (the negative phase did something)
    raw["training"].pop("lr_schedule")
    plain = Federation(parse_spec(raw), tmp_path / "plain", progress=False)
    plain.run()
    assert plain.clients[0].scheduler is None and "lr_schedule" not in plain.clients[0].state()
    assert not np.array_equal(plain.params, whole.params)
