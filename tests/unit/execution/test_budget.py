"""Budgets are never crossed; costs and shot splits match hand computations.

Property tests drive the real :class:`CircuitEvaluator` (cost estimate, per-item shot allocation,
``charge`` callback) through a runner that fails transiently a random number of times and pays
for every attempt, as the journaled runner does.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qflhw.circuits.ansatz import build, z_observables
from qflhw.circuits.measure import measurement_bases
from qflhw.config.profiles import DeviceProfile, Price
from qflhw.devices.base import Batch, BatchItem, BatchResult, ItemResult, JobKey
from qflhw.devices.factory import make_device
from qflhw.errors import BudgetExceeded, ConfigError, TransientBackendError
from qflhw.execution.budget import Cost, Ledger, job_cost
from qflhw.execution.evaluator import CircuitEvaluator
from qflhw.execution.mitigation import ZNE
from qflhw.execution.shots import AdaptiveShots, allocate

BRAKET_PRICE = Price(per_task=Decimal("0.30"), per_shot=Decimal("0.00145"))
IBM_PRICE = Price(per_second=Decimal("1.60"))


def _profile(price: Price) -> DeviceProfile:
    return DeviceProfile(
        name="priced_fez", provider="fake", device="ibm_fez", calibration="ibm_fez/latest", qubits=156, price=price
    )


# ------------------------------------------------------------------------------ hand-computed costs


def test_braket_job_cost_is_per_task_plus_per_shot() -> None:
    c = job_cost(_profile(BRAKET_PRICE), circuits=12, shots=1000)
    # $0.30 per task + 12 circuits x 1000 shots x $0.00145
    assert c.usd == Decimal("17.700000")
    assert (c.tasks, c.shots, c.seconds) == (1, 12_000, 0.0)


def test_ibm_job_cost_follows_the_time_model() -> None:
    c = job_cost(_profile(IBM_PRICE), circuits=10, shots=100, circuit_seconds=1e-6)
    # 2.0 s per job + 1000 shots x (1 us circuit + 250 us repetition delay) = 2.251 s, at $1.60/s
    assert c.seconds == pytest.approx(2.251)
    assert c.usd == Decimal("3.601600")
    assert c.shots == 1000


def test_items_with_their_own_shots_are_billed_for_those() -> None:
    c = job_cost(_profile(BRAKET_PRICE), circuits=3, shots=100, total_shots=250)
    assert c.shots == 250 and c.usd == Decimal("0.30") + Decimal("0.00145") * 250


# ------------------------------------------------------------------------------ the evaluator, priced

MODEL = build("rot-crx", 2, 1)
OBS = tuple(z_observables(2))
_EVALUATORS: dict[str, CircuitEvaluator] = {}


def evaluator(kind: str) -> CircuitEvaluator:
    """A priced fake-fez evaluator with ZNE (3 variants), built once: tests swap its ledger and runner."""
    if kind not in _EVALUATORS:
        dev = make_device(_profile(BRAKET_PRICE if kind == "braket" else IBM_PRICE))
        zne = ZNE(dev.calibration, scale_factors=[1, 3, 5])
        _EVALUATORS[kind] = CircuitEvaluator(dev, MODEL, OBS, client="c", shots=100, mitigation=zne)
    return _EVALUATORS[kind]


class FlakyRunner:
    """Fails ``failures`` times per job with a transient error, paying (``charge()``) every attempt.

    Returns a synthetic result and records the shots the device would have run.
    """

    def __init__(self, failures: list[int], seed: int = 0):
        self.failures = list(failures)
        self.rng = np.random.default_rng(seed)
        self.shots_run = 0
        self.attempts = 0

    def __call__(self, device, batch: Batch, shots, charge) -> BatchResult:  # noqa: ANN001
        fails = self.failures.pop(0) if self.failures else 0
        for attempt in range(fails + 1):
            charge()  # raises BudgetExceeded when this attempt cannot be paid
            self.attempts += 1
            if attempt < fails:
                try:
                    raise TransientBackendError("throttled (injected)")
                except TransientBackendError:
                    continue
        self.shots_run += batch.total_shots(shots)
        items = []
        for item in batch.items:
            nb, no = item.num_bindings, len(item.observables)
            items.append(
                ItemResult(
                    self.rng.uniform(-1, 1, (nb, no)),
                    np.full((nb, no), 0.01 + 0.05 * self.rng.random()),
                    measurement_bases(item.observables),
                )
            )
        return BatchResult(items, "job", device.name, "calibration", shots)


steps = st.lists(
    st.tuples(
        st.integers(0, 2),  # round
        st.integers(1, 3),  # data points in the minibatch
        st.sampled_from([None, 1, 7, 100, 1000]),  # shots per circuit (None: exact)
        st.integers(0, 3),  # transient failures before success
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["braket", "ibm"]),
    max_usd=st.decimals(min_value=0, max_value=200, places=2),
    shots_per_round=st.one_of(st.none(), st.integers(1, 200_000)),
    allocation=st.sampled_from(["uniform", "variance-weighted"]),
    plan=steps,
    grad=st.booleans(),
)
def test_shots_and_usd_never_cross_their_caps(kind, max_usd, shots_per_round, allocation, plan, grad) -> None:  # noqa: ANN001
    ev = evaluator(kind)
    ledger = Ledger(max_usd=max_usd, shots_per_round=shots_per_round)
    runner = FlakyRunner([fails for *_, fails in plan])
    ev.ledger, ev.runner, ev.shot_allocation, ev.item_variance = ledger, runner, allocation, None
    stopped = False
    for round_, points, shots, _fails in plan:
        ev.shots = shots
        x = np.full((points, len(MODEL.inputs)), 0.3)
        try:
            ev(x, np.zeros(len(MODEL.weights)), key=JobKey("t", round_, "c", 0), round_=round_, grad=grad)
        except BudgetExceeded:
            stopped = True  # a client stops here; later steps would be refused the same way
        assert ledger.spent.usd <= ledger.max_usd
        if shots_per_round is not None:
            assert all(v <= shots_per_round for v in ledger.round_shots.values())
    # every shot the device ran was paid for (retries are paid again, so the ledger may hold more)
    assert ledger.spent.shots >= runner.shots_run
    assert ledger.spent.tasks == runner.attempts
    assert sum(ledger.round_shots.values()) == ledger.spent.shots
    if not stopped:
        assert runner.attempts == sum(f + 1 for *_, f in plan)


def test_variance_weighted_items_get_their_own_shots_and_are_billed_exactly() -> None:
    ev = evaluator("braket")
    ledger = Ledger(max_usd=Decimal(1000))
    sent: list[Batch] = []

    def runner(device, batch, shots, charge):  # noqa: ANN001, ANN202
        sent.append(batch)
        return FlakyRunner([0], seed=len(sent))(device, batch, shots, charge)

    ev.ledger, ev.runner, ev.shot_allocation, ev.item_variance, ev.shots = ledger, runner, "variance-weighted", None, 100
    x = np.full((2, len(MODEL.inputs)), 0.3)
    ev(x, np.zeros(len(MODEL.weights)), key=JobKey("t", 0, "c", 0), round_=0)
    ev(x, np.zeros(len(MODEL.weights)), key=JobKey("t", 0, "c", 1), round_=0)
    first, second = sent
    assert [i.shots for i in first.items] == [100, 100, 100]  # no variance known yet: uniform
    own = [i.shots for i in second.items]
    assert None not in own and own[0] > own[2]  # |w| = 15/8 vs 3/8
    assert second.total_shots(100) <= first.total_shots(100)
    assert ledger.spent.shots == first.total_shots(100) + second.total_shots(100)


# ------------------------------------------------------------------------------ allocation, adaptive shots


@settings(max_examples=200, deadline=None)
@given(
    shots=st.integers(1, 5000),
    circuits=st.lists(st.integers(1, 50), min_size=1, max_size=6),
    data=st.data(),
)
def test_allocation_never_spends_more_than_uniform(shots: int, circuits: list[int], data) -> None:  # noqa: ANN001
    n = len(circuits)
    coeffs = data.draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n))
    variances = data.draw(st.one_of(st.none(), st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n)))
    out = allocate("variance-weighted", shots, circuits, coeffs, variances)
    assert len(out) == n and all(k >= 1 for k in out)
    assert sum(c * k for c, k in zip(circuits, out)) <= shots * sum(circuits)
    assert allocate("uniform", shots, circuits, coeffs, variances) == [shots] * n
    if variances is not None:
        weight = [abs(c) * v**0.5 for c, v in zip(coeffs, variances)]
        for i in range(n):
            for j in range(n):
                if weight[i] > weight[j]:
                    assert out[i] >= out[j]


def test_allocation_by_hand() -> None:
    # Richardson weights 15/8, -10/8, 3/8 with equal variances: shots in ratio 15:10:3 above a floor
    out = allocate("variance-weighted", 1000, [1, 1, 1], [15 / 8, -10 / 8, 3 / 8], [0.5, 0.5, 0.5])
    floor = 100  # min_fraction 0.1 of the uniform 1000
    spare = 3000 - 3 * floor
    assert out == [floor + spare * 15 // 28, floor + spare * 10 // 28, floor + spare * 3 // 28]
    with pytest.raises(ConfigError, match="training.shot_allocation"):
        allocate("greedy", 100, [1], [1], [1])


def test_adaptive_shots_grow_as_the_gradient_shrinks() -> None:
    policy = AdaptiveShots(1000, learning_rate=0.1, lipschitz=1.0, min_shots=10, max_shots=50_000)
    kappa = 2 * 0.1 / (2 - 0.1)
    var_one_shot = 1.0
    seen = []
    for g in np.geomspace(0.1, 0.001, 30):
        shots = policy.shots()
        jac = np.full((2, 1, 3), g)
        seen.append(policy.update(jac, np.full_like(jac, var_one_shot / shots), shots))
    assert seen == sorted(seen) and seen[-1] > 20 * seen[0]
    # first update (bias-corrected averages are the values themselves): kappa * var / (g^2 - var/shots)
    assert seen[0] == int(np.ceil(kappa * var_one_shot / (0.1**2 - var_one_shot / 1000)))
    assert all(10 <= s <= 50_000 for s in seen)
    with pytest.raises(ConfigError, match="training.learning_rate"):
        AdaptiveShots(100, learning_rate=2.5, lipschitz=1.0)


def test_item_shots_override_the_batch_shots_on_the_fake_device() -> None:
    dev = make_device("fake_fez")
    tc = dev.transpile(MODEL.circuit)
    rows = np.full((2, len(MODEL.parameters)), 0.4)
    batch = Batch((BatchItem(tc, MODEL.parameters, rows, OBS, shots=7), BatchItem(tc, MODEL.parameters, rows, OBS)))
    res = dev.run(batch, 1000)
    counts7, counts1000 = res.items[0].distributions[0] * 7, res.items[1].distributions[0] * 1000
    np.testing.assert_allclose(counts7, np.round(counts7), atol=1e-9)
    assert not np.allclose(counts1000 / 1000 * 7, np.round(counts1000 / 1000 * 7))
    assert batch.total_shots(1000) == 2 * 7 + 2 * 1000 and batch.total_shots(None) == 0
    with pytest.raises(ConfigError, match="item shots"):
        BatchItem(tc, MODEL.parameters, rows, OBS, shots=0)


def test_client_stops_cleanly_when_the_budget_cannot_cover_a_step(tiny_spec) -> None:  # noqa: ANN001
    from qflhw.config.spec import load_spec
    from qflhw.training.client import Client

    spec = load_spec(tiny_spec)
    dev = make_device("fake_fez")
    x = np.random.default_rng(0).uniform(0, 1, (8, spec.model.qubits))
    y = np.array([0, 1] * 4)
    ledger = Ledger(shots_per_round=10)  # less than one step
    client = Client(spec.clients[0], spec, dev, x, y, MODEL, OBS, 2, run_id="t", ledger=ledger)
    res = client.train_round(client.model.get_flat(), 0)
    assert res.params is None and res.error.startswith("budget: ") and "budget.shots_per_round=10" in res.error
    assert client.stopped and ledger.spent == Cost()
    again = client.train_round(client.model.get_flat(), 1)  # stays out, sends nothing
    assert again.error == client.stopped and ledger.spent == Cost()
