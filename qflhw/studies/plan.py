"""``qflhw plan``: the settings that reach the best accuracy within a budget, rehearsed on the twins.

1. **Devices.** Each client's allowed devices (``[plan] devices.<client>``, default its own) are
   resolved to a *live* profile, which is priced and written into the plan, and a *twin* (fake
   profile), on which the plan is rehearsed. A fake twin stands for the live device it twins (a
   retired one for its replacement, said in the output); a live or ``_emulated`` profile is
   rehearsed on the fake twin of its device.
2. **Mitigation.** Per client and shots per binding, the method with the lowest RMSE predicted by
   :mod:`qflhw.execution.mitigation.rmse` (the model ``benchmarks/mitigation_error.py`` checks) is
   used; ZNE then splits the shots over its scale factors, so mitigation costs about the same.
3. **Prices.** Every setting (gradient, shots, adaptive shots, batch size, local epochs, client
   fraction, devices) is priced, for every round count up to ``max_rounds``, with the ledger's
   own cost model through :func:`qflhw.federation.estimate.step_costs` on the live profiles'
   offline stand-ins (exactly what ``qflhw estimate`` prints for the written plan), optionally
   corrected by earlier runs' bills (``--calibrate-from``). A plan is *within budget* when both
   the model's and the calibrated price are at most the budget.
4. **Rehearsals.** Each affordable setting is rehearsed once on the twins (worker processes, one
   seed, as many rounds as it can afford: the accuracy after every round prices every shorter
   plan too; it stops early once the target, or 1.0, is reached). The ``finalists`` best and the
   one-seed Pareto front get the other seeds. Results are cached on disk by the rehearsal's full
   spec and the twins' code and calibration, so planning again is fast.
5. **Spread.** For the mean of ``seeds`` rehearsals, the printed range is a 95% prediction
   interval for the mean accuracy of three fresh seeds: mean ± t(n-1) · s · sqrt(1/n + 1/3), with
   s at least the binomial standard deviation of an accuracy on the held-out test set.

The table is the Pareto front (cost, predicted accuracy) of the rehearsed plans; the best plan
within budget is marked (with a target: the cheapest one predicted to reach it).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from qflhw._util import atomic_write, digest
from qflhw.config.profiles import DeviceProfile, available, load_profile
from qflhw.config.spec import JobSpec, PlanSpec, parse_spec
from qflhw.errors import ConfigError
from qflhw.execution.budget import Cost, Ledger
from qflhw.execution.evaluator import CircuitEvaluator, direct_runner
from qflhw.federation.assembly import Assembly, selected_indices, training_rows
from qflhw.federation.bill import ModelCalibration
from qflhw.federation.estimate import format_duration, job_seconds, step_costs

#: Fresh seeds a printed spread is a prediction interval for (the check a user would run).
FRESH_SEEDS = 3
CACHE_VERSION = "plan-1"
_TWIN_CODE = ("devices/simulator.py", "devices/fake.py", "calibration/target.py", "circuits/transpile.py",
              "federation/loop.py", "training/client.py", "execution/evaluator.py")


# ------------------------------------------------------------------------------ devices
@dataclass(frozen=True)
class DeviceOption:
    """One device a client may use: the live profile priced and written, the twin rehearsed."""

    live: DeviceProfile
    twin: str
    note: str = ""  # e.g. a retired device priced as its replacement


def resolve_device(name: str) -> DeviceOption:
    """The live profile and the fake twin a spec's device name stands for (see the module doc)."""
    prof = load_profile(name)
    if prof.provider == "fake":
        twin, note = prof.name, ""
        try:
            live = load_profile(prof.device)
        except ConfigError:
            return DeviceOption(prof, twin, f"{prof.device} has no live profile; priced as {prof.name} (free)")
    else:
        live, note = prof, ""
        twin = _twin_of(prof)
    if live.retired is not None and not live.emulate:
        replacement = load_profile(str(live.replacement))
        note = f"{live.name} retired {live.retired}: priced and planned on {replacement.name}, rehearsed on {twin}"
        live = replacement
    return DeviceOption(live, twin, note)


def _twin_of(prof: DeviceProfile) -> str:
    names = {prof.name, prof.name.removesuffix("_emulated"), prof.device}
    for cand in available():
        p = load_profile(cand)
        if p.provider == "fake" and p.device in names:
            return p.name
    raise ConfigError(f"device {prof.name}: no fake twin profile (provider 'fake', device {prof.name!r}) to rehearse "
                      "on; add one to backends/ or list a twin in [plan] devices")


def device_options(spec: JobSpec, plan: PlanSpec) -> list[list[DeviceOption]]:
    """Per client (spec order) the devices it may use."""
    out = []
    for c in spec.clients:
        names = plan.devices.get(c.name) or [c.device]
        opts, seen = [], set()
        for n in names:
            try:
                o = resolve_device(n)
            except ConfigError as err:
                raise ConfigError(f"plan.devices.{c.name}: {err}") from err
            if (o.live.name, o.twin) not in seen:
                seen.add((o.live.name, o.twin))
                opts.append(o)
        out.append(opts)
    return out


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """Everything a plan fixes except the number of rounds (one rehearsal serves every count)."""

    gradient: str
    shots: int  # per binding: per circuit without ZNE, split over the scale factors with it
    adaptive: bool
    batch_size: int
    local_epochs: int
    client_fraction: float
    devices: tuple[int, ...]  # option index per client
    mitigation: tuple[str, ...] = ()  # method per client (set after the RMSE model)

    def label(self) -> str:
        a = "+adaptive" if self.adaptive else ""
        return f"{self.gradient}{a} shots={self.shots} batch={self.batch_size} epochs={self.local_epochs} frac={self.client_fraction:g}"


@dataclass
class Candidate:
    """A setting with a round count, priced (and, once rehearsed, with predicted accuracy)."""

    setting: Setting
    rounds: int
    cost: Cost
    calibrated_usd: Decimal
    wall_s: float
    accuracies: list[float] = field(default_factory=list)  # one per rehearsal seed
    n_test: int = 0

    @property
    def usd(self) -> Decimal:
        return self.cost.usd

    def within(self, budget: Decimal) -> bool:
        return max(self.cost.usd, self.calibrated_usd) <= budget

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies)) if self.accuracies else float("nan")

    def spread(self, fresh: int = FRESH_SEEDS) -> tuple[float, float]:
        """95% prediction interval for the mean accuracy of ``fresh`` new seeds (module doc)."""
        return prediction_interval(self.accuracies, self.n_test, fresh)

    def to_dict(self, options: list[list[DeviceOption]], names: Sequence[str]) -> dict[str, Any]:
        lo, hi = self.spread() if len(self.accuracies) > 1 else (float("nan"), float("nan"))
        s = self.setting
        return {
            "usd": str(self.cost.usd), "calibrated_usd": str(self.calibrated_usd), "jobs": self.cost.tasks,
            "shots": self.cost.shots, "wall_seconds": round(self.wall_s, 1), "rounds": self.rounds,
            "gradient": s.gradient, "shots_per_binding": s.shots, "adaptive_shots": s.adaptive, "batch_size": s.batch_size,
            "local_epochs": s.local_epochs, "client_fraction": s.client_fraction,
            "devices": {n: options[k][i].live.name for k, (n, i) in enumerate(zip(names, s.devices))},
            "twins": {n: options[k][i].twin for k, (n, i) in enumerate(zip(names, s.devices))},
            "mitigation": dict(zip(names, s.mitigation)),
            "accuracy_mean": None if not self.accuracies else round(self.mean, 4), "accuracies": self.accuracies,
            "spread": None if math.isnan(lo) else [round(lo, 4), round(hi, 4)],
        }


def prediction_interval(accs: Sequence[float], n_test: int, fresh: int = FRESH_SEEDS) -> tuple[float, float]:
    """mean ± t_{0.975, n-1} · s · sqrt(1/n + 1/fresh), s floored at a test-set accuracy's binomial
    standard deviation (Laplace-smoothed p, so it is never 0); clipped to [0, 1]."""
    from scipy.stats import t as student_t

    n = len(accs)
    mean = float(np.mean(accs))
    s = float(np.std(accs, ddof=1)) if n > 1 else 0.0
    if n_test > 0:
        p = (mean * n_test + 1) / (n_test + 2)
        s = max(s, math.sqrt(p * (1 - p) / n_test))
    half = float(student_t.ppf(0.975, max(n - 1, 1))) * s * math.sqrt(1 / max(n, 1) + 1 / fresh)
    return max(0.0, mean - half), min(1.0, mean + half)


def settings_grid(spec: JobSpec, plan: PlanSpec, options: list[list[DeviceOption]], rows: Sequence[int]) -> list[Setting]:
    """Every distinct setting: batch sizes at or above a client's rows collapse into one full batch."""
    most = max(rows) if rows else 1
    batches = sorted({min(b, most) for b in plan.batch_sizes})
    n = len(spec.clients)
    fractions, seen_k = [], set()
    for f in plan.client_fractions:
        k = max(1, int(round(f * n)))
        if k not in seen_k:
            seen_k.add(k)
            fractions.append(f)
    out = []
    for g, s, a, b, e, f, devs in itertools.product(
        plan.gradients, plan.shots, sorted(set(plan.adaptive_shots)), batches, plan.local_epochs, fractions,
        itertools.product(*[range(len(o)) for o in options]),
    ):
        if a and g != "parameter-shift":
            continue  # iCANS needs parameter-shift gradients' variances
        out.append(Setting(g, s, a, b, e, f, tuple(devs)))
    return out


# ------------------------------------------------------------------------------ specs
def plan_spec(spec: JobSpec, setting: Setting, rounds: int, options: list[list[DeviceOption]], *,
              twins: bool = False, budget: Decimal | None = None, seed: int | None = None) -> JobSpec:
    """The job spec of a plan: on the live profiles (``budget.max_usd`` = ``budget``) or the twins."""
    raw = spec.model_dump(mode="json")
    raw["rounds"] = rounds
    raw["client_fraction"] = setting.client_fraction
    if seed is not None:
        raw["seed"] = seed
    t = raw["training"]
    t.update(gradient=setting.gradient, batch_size=setting.batch_size, local_epochs=setting.local_epochs,
             shots=setting.shots, adaptive_shots=setting.adaptive)
    if setting.adaptive:  # capped at the planned shots: the price is an upper bound, adaptation only saves
        t.update(max_shots=setting.shots, min_shots=min(t["min_shots"], setting.shots))
    raw["budget"]["max_usd"] = 0.0 if twins else float(budget if budget is not None else spec.budget.max_usd)
    mitigation = setting.mitigation or ("none",) * len(spec.clients)
    base_mit = raw["mitigation"]
    for k, c in enumerate(raw["clients"]):
        opt = options[k][setting.devices[k]]
        c["device"] = opt.twin if twins else opt.live.name
        for key in ("shots", "batch_size", "local_epochs"):
            c[key] = None
        if not twins and opt.live.provider != "fake":
            c["noise_scale"] = 1.0
        method = mitigation[k]
        c["mitigation"] = None if method == "none" else {**base_mit, "method": method}
        if "zne" in method:
            c["shots"] = max(1, setting.shots // len(base_mit["scale_factors"]))
    raw["mitigation"] = {**base_mit, "method": "none"}
    return parse_spec(raw, f"plan of {spec.name}")


def to_toml(spec: JobSpec, header: str = "") -> str:
    """A spec as TOML (``tomli_w``), unset optional values left out, under a comment header."""
    import tomli_w

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    text = tomli_w.dumps(clean(spec.model_dump(mode="json")))
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + text


# ------------------------------------------------------------------------------ pricing
class Pricer:
    """Per client, device option, gradient and mitigation variant count: the evaluator the ledger
    would charge with, built once on the live profile's offline stand-in."""

    def __init__(self, spec: JobSpec, options: list[list[DeviceOption]], calibration: ModelCalibration | None = None):
        self.spec, self.options = spec, options
        self.calibration = calibration or ModelCalibration()
        self.assembly = Assembly(spec)
        self.rows = [len(training_rows(spec, self.assembly.data, k)[1]) for k in range(len(spec.clients))]
        self._evaluators: dict[tuple[int, int, str, bool], CircuitEvaluator] = {}
        self._selection: dict[tuple[float, int], list[list[int]]] = {}

    def evaluator(self, k: int, option: int, gradient: str, zne: bool) -> CircuitEvaluator:
        key = (k, option, gradient, zne)
        if key not in self._evaluators:
            opt = self.options[k][option]
            raw = self.spec.model_dump(mode="json")
            raw["training"]["gradient"] = gradient
            c = raw["clients"][k]
            c["device"] = opt.live.name
            if opt.live.provider != "fake":
                c["noise_scale"] = 1.0
            c["mitigation"] = {**raw["mitigation"], "method": "zne" if zne else "none"}
            sub = parse_spec(raw, f"plan of {self.spec.name}")
            assembly = Assembly(sub)
            client = assembly.client(k, assembly.offline_device(k), ledger=Ledger(), runner=direct_runner)
            self._evaluators[key] = client.evaluator
        return self._evaluators[key]

    def selection(self, fraction: float, rounds: int) -> list[list[int]]:
        """Clients (spec positions) selected in each of the first ``rounds`` rounds."""
        key = (fraction, rounds)
        if key not in self._selection:
            sub = self.spec.model_copy(update={"client_fraction": fraction, "rounds": rounds})
            self._selection[key] = [selected_indices(sub, r) for r in range(rounds)]
        return self._selection[key]

    def client_round(self, k: int, s: Setting) -> tuple[Cost, float, Decimal]:
        """(cost, wall seconds, calibrated USD) of client ``k``'s round under ``s``."""
        zne = "zne" in (s.mitigation[k] if s.mitigation else "none")
        ev = self.evaluator(k, s.devices[k], s.gradient, zne)
        shots = max(1, s.shots // len(ev.variants)) if zne else s.shots
        steps = step_costs(ev, self.rows[k], s.batch_size, s.local_epochs, shots)
        total = Cost()
        for c in steps:
            total = total + c
        live = self.options[k][s.devices[k]].live
        waits = self.calibration.waits
        wall = sum(job_seconds(live, c, {live.name: waits[live.name]} if live.name in waits else None) for c in steps)
        ratio = Decimal(str(self.calibration.ratio(live.name)))
        return total, wall, (total.usd * ratio).quantize(Decimal("0.000001"))

    def candidates(self, s: Setting, max_rounds: int) -> list[Candidate]:
        """``s`` with 1 .. ``max_rounds`` rounds, each priced as `qflhw estimate` prices its spec."""
        per = [self.client_round(k, s) for k in range(len(self.spec.clients))]
        out: list[Candidate] = []
        cost, cal, wall = Cost(), Decimal(0), 0.0
        for chosen in self.selection(s.client_fraction, max_rounds):
            for k in chosen:
                cost = cost + per[k][0]
                cal += per[k][2]
            wall += max((per[k][1] for k in chosen), default=0.0)
            out.append(Candidate(s, len(out) + 1, cost, cal, wall))
        return out


# ------------------------------------------------------------------------------ rehearsals
def _code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(CACHE_VERSION.encode())
    for rel in _TWIN_CODE:
        path = root / rel
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def rehearsal_key(spec_json: dict, stop_at: float) -> str:
    return digest(json.dumps({"spec": spec_json, "stop": stop_at, "code": _code_digest()}, sort_keys=True), 32)


_DEVICES: dict[tuple, Any] = {}


def rehearse(spec_json: dict, stop_at: float) -> dict:
    """Run a twin spec round by round in this process (no journal, no outputs), stopping after a
    round whose accuracy reaches ``stop_at``; devices are reused across calls (same seeds give
    the same devices). Returns the accuracy per round, the test-set size and the ledger's shots."""
    from qflhw.federation.assembly import Assembly, device_seed
    from qflhw.federation.loop import Federation

    spec = JobSpec.model_validate(spec_json)
    devices = {}
    assembly = None
    for k, c in enumerate(spec.clients):
        drift = c.drift.model_dump_json() if c.drift is not None else None
        twin = c.twin.model_dump_json() if c.twin is not None else None
        key = (c.device, device_seed(spec, c), c.noise_scale, tuple(c.calibration_refs), drift, twin)
        if key not in _DEVICES:
            assembly = assembly or Assembly(spec)
            _DEVICES[key] = assembly.device(k)  # a drifting client's device is reset to round 0 by its client
        devices[c.name] = _DEVICES[key]
    fed = Federation(spec, Path("unused-plan-rehearsal"), devices=devices, progress=False)
    accs = []
    for r in range(spec.rounds):
        acc, _ = fed.run_round(r)
        accs.append(float(acc))
        if acc >= stop_at:
            break
    return {"accuracy": accs, "n_test": int(len(fed.data.global_test.y)), "shots": int(fed.ledger.spent.shots)}


def error_model_task(twin: str, seed: int, model_json: dict, mitigation_json: dict, methods: list[str]) -> dict:
    """The RMSE model of each method on one twin (for the worker pool); plain data back."""
    from qflhw.config.spec import MitigationSpec, ModelSpec
    from qflhw.devices.factory import make_device
    from qflhw.execution.mitigation.rmse import error_models
    from qflhw.federation.assembly import model_and_observables

    model, obs = model_and_observables(ModelSpec.model_validate(model_json))
    dev = make_device(twin, seed=seed)
    found = error_models(dev, model, obs, methods, setting=MitigationSpec.model_validate(mitigation_json))
    return {m: {"bias": e.bias.tolist(), "unit_variance": e.unit_variance.tolist(), "circuits": e.circuits} for m, e in found.items()}


def _one_thread() -> None:
    """Workers share the machine: one torch thread each (the twins' simulator has its own)."""
    import torch

    torch.set_num_threads(1)


class Pool:
    """Worker processes (spawned, one torch thread each) or this process when ``workers`` is 1."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: Any = None
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_one_thread)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> list[Any]:
        if self._pool is None:
            return [fn(*a) for a in calls]
        futures = [self._pool.submit(fn, *a) for a in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


class Cache:
    """Rehearsal results on disk, one JSON file per key (None: no cache)."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder else None
        self.hits = 0

    def get(self, key: str) -> Any:
        if self.folder is None:
            return None
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self.folder / f"{key}.json", json.dumps(value) + "\n", fsync=False)


# ------------------------------------------------------------------------------ the plan
@dataclass
class PlanResult:
    spec: JobSpec
    budget: Decimal
    target: float | None
    options: list[list[DeviceOption]]
    front: list[Candidate]  # Pareto front of the rehearsed candidates, by cost
    best: Candidate | None
    reached: bool  # the best plan is predicted to reach the target (True without a target)
    closest: Candidate | None  # without a reachable target: the most accurate plan within budget
    priced: int
    affordable: int
    rehearsals: int
    cache_hits: int
    seconds: float
    cheapest_usd: Decimal | None  # the cheapest priced plan (1 round), whatever the budget
    calibration: ModelCalibration
    rmse: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)  # client -> shots -> method -> RMSE
    seeds: list[int] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.spec.clients]

    def best_spec(self, *, twins: bool = False) -> JobSpec | None:
        if self.best is None:
            return None
        return plan_spec(self.spec, self.best.setting, self.best.rounds, self.options, twins=twins, budget=self.budget)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.name, "budget_usd": str(self.budget), "target_accuracy": self.target,
            "reached_target": self.reached, "priced": self.priced, "affordable": self.affordable,
            "rehearsals": self.rehearsals, "cache_hits": self.cache_hits, "seconds": round(self.seconds, 1),
            "cheapest_usd": None if self.cheapest_usd is None else str(self.cheapest_usd),
            "rehearsal_seeds": self.seeds, "calibration": self.calibration.describe(),
            "devices": {n: [{"live": o.live.name, "twin": o.twin, "note": o.note} for o in opts]
                        for n, opts in zip(self.names, self.options)},
            "mitigation_rmse": self.rmse,
            "front": [c.to_dict(self.options, self.names) for c in self.front],
            "best": None if self.best is None else self.best.to_dict(self.options, self.names),
            "closest": None if self.closest is None else self.closest.to_dict(self.options, self.names),
        }


def pareto_front(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both cost (lower) and mean accuracy (higher), by cost."""
    ordered: list[Candidate]
    ordered = sorted(cands, key=lambda c: (c.usd, -c.mean, c.cost.tasks))
    front: list[Candidate] = []
    for c in ordered:
        if not front or c.mean > front[-1].mean + 1e-12:
            front.append(c)
    return front


def choose(front: Sequence[Candidate], budget: Decimal, target: float | None) -> tuple[Candidate | None, bool, Candidate | None]:
    """(best, reached, closest): with a target the cheapest plan within budget predicted to reach
    it; otherwise (or when none does) the most accurate one within budget."""
    within = [c for c in front if c.within(budget)]
    top = max(within, key=lambda c: (c.mean, -c.usd), default=None)
    if target is None:
        return top, True, None
    reach = [c for c in within if c.mean >= target]
    if reach:
        return min(reach, key=lambda c: (c.usd, -c.mean)), True, None
    return top, False, top


def screen(rounds_of: dict[Setting, int], most: int) -> list[Setting]:
    """The settings worth a rehearsal: drop one when a setting equal but for more shots affords at
    least as many rounds (more shots and rounds do not hurt), then keep the ``most`` with the most
    optimizer steps (rounds x steps per round; ties: more shots, parameter shift first)."""
    def family(s: Setting) -> tuple:
        return (s.gradient, s.adaptive, s.batch_size, s.local_epochs, s.client_fraction, s.devices)

    kept = [s for s in rounds_of if not any(
        family(o) == family(s) and o.shots > s.shots and rounds_of[o] >= rounds_of[s] for o in rounds_of)]
    steps = {s: rounds_of[s] * s.local_epochs / s.batch_size for s in kept}  # per training row: comparable across clients
    kept.sort(key=lambda s: (-steps[s], -s.shots, s.gradient != "parameter-shift", s.label()))
    return kept[:most]


def price_all(spec: JobSpec, plan: PlanSpec, budget: Decimal, *, options: list[list[DeviceOption]] | None = None,
              calibration: ModelCalibration | None = None,
              mitigation: Callable[[int, int, int], str] | None = None) -> tuple[list[Candidate], Pricer]:
    """Every setting of the grid with every round count, priced (no rehearsal); ``mitigation(k,
    option, shots)`` picks each client's method (default: none)."""
    options = options or device_options(spec, plan)
    pricer = Pricer(spec, options, calibration)
    out = []
    for s in settings_grid(spec, plan, options, pricer.rows):
        methods = tuple(mitigation(k, s.devices[k], s.shots) if mitigation else "none" for k in range(len(spec.clients)))
        out.extend(pricer.candidates(replace(s, mitigation=methods), plan.max_rounds))
    return out, pricer


def make_plan(
    spec: JobSpec,
    plan: PlanSpec,
    budget: float | Decimal,
    *,
    target: float | None = None,
    workers: int = 2,
    cache: Path | None = None,
    calibration: ModelCalibration | None = None,
    log: Callable[[str], None] = lambda m: None,
) -> PlanResult:
    """Search, price and rehearse (see the module docstring)."""
    start = time.perf_counter()
    budget = Decimal(str(budget))
    if budget < 0:
        raise ConfigError(f"--budget-usd must be >= 0, got {budget}")
    if target is not None and not 0 < target <= 1:
        raise ConfigError(f"--target-accuracy must be in (0, 1], got {target}")
    options = device_options(spec, plan)
    calibration = calibration or ModelCalibration()
    store = Cache(cache)
    pool = Pool(workers)
    try:
        choose_method, rmse = _mitigation_chooser(spec, plan, options, pool, store, log)
        cands, pricer = price_all(spec, plan, budget, options=options, calibration=calibration, mitigation=choose_method)
        cheapest = min((c.usd for c in cands), default=None)
        affordable = [c for c in cands if c.within(budget)]
        by_setting: dict[Setting, list[Candidate]] = {}
        for c in affordable:
            by_setting.setdefault(c.setting, []).append(c)
        log(f"plan {spec.name}: {len(cands)} plans priced, {len(affordable)} within ${budget} "
            f"({len(by_setting)} settings to rehearse on the twins)")
        seeds = [spec.seed + 1000 * i for i in range(plan.seeds)]
        stop_at = target if target is not None else 1.0
        rehearsed = 0

        def run(settings: Sequence[Setting], seed_list: Sequence[int], rounds_of: dict[Setting, int]) -> dict:
            nonlocal rehearsed
            calls, keys, results = [], [], {}
            for s in settings:
                for sd in seed_list:
                    sj = plan_spec(spec, s, rounds_of[s], options, twins=True, seed=sd).model_dump(mode="json")
                    key = rehearsal_key(sj, stop_at)
                    hit = store.get(key)
                    if hit is not None:
                        results[(s, sd)] = hit
                    else:
                        calls.append((sj, stop_at))
                        keys.append((s, sd, key))
            for (s, sd, key), res in zip(keys, pool.map(rehearse, calls)):
                store.put(key, res)
                results[(s, sd)] = res
            rehearsed += len(calls)
            return results

        rounds_of = {s: max(c.rounds for c in cs) for s, cs in by_setting.items()}
        kept = screen(rounds_of, plan.screen)
        if len(kept) < len(by_setting):
            log(f"plan {spec.name}: {len(by_setting) - len(kept)} settings left out: another affords as many rounds "
                f"with more shots, or past the {plan.screen} with the most optimizer steps")
            by_setting = {s: by_setting[s] for s in kept}
        first = run(list(by_setting), seeds[:1], rounds_of)
        score: dict[Setting, float] = {}
        for s, cs in by_setting.items():
            accs = first[(s, seeds[0])]["accuracy"]
            rounds_of[s] = len(accs)  # an early stop shortens every seed's rehearsal alike
            score[s] = max(accs)
            for c in cs:
                c.n_test = first[(s, seeds[0])]["n_test"]
                if c.rounds <= len(accs):
                    c.accuracies = [accs[c.rounds - 1]]
        screened = [c for cs in by_setting.values() for c in cs if c.accuracies]
        finalists = sorted(score, key=lambda s: (-score[s], min(c.usd for c in by_setting[s])))[: plan.finalists]
        finalists += [c.setting for c in pareto_front(screened) if c.setting not in finalists]
        log(f"plan {spec.name}: {len(by_setting)} settings screened with one seed; {len(finalists)} finalists "
            f"rehearsed with {plan.seeds} seeds")
        more = run(finalists, seeds[1:], rounds_of)
        final: list[Candidate] = []
        for s in finalists:
            for c in by_setting[s]:
                if c.rounds > rounds_of[s]:
                    continue
                curves = [first[(s, seeds[0])]["accuracy"]] + [more[(s, sd)]["accuracy"] for sd in seeds[1:]]
                if all(len(cv) >= c.rounds for cv in curves):
                    c.accuracies = [cv[c.rounds - 1] for cv in curves]
                    final.append(c)
                elif c.rounds == rounds_of[s]:  # a seed stopped early at the target: it stays there
                    c.accuracies = [cv[min(c.rounds, len(cv)) - 1] for cv in curves]
                    final.append(c)
        front = pareto_front(final)
        best, reached, closest = choose(front, budget, target)
    finally:
        pool.close()
    return PlanResult(spec, budget, target, options, front, best, reached, closest, len(cands), len(affordable),
                      rehearsed, store.hits, time.perf_counter() - start, cheapest, calibration, rmse, seeds)


def _mitigation_chooser(spec: JobSpec, plan: PlanSpec, options: list[list[DeviceOption]], pool: Pool, store: Cache,
                        log: Callable[[str], None]) -> tuple[Callable[[int, int, int], str], dict]:
    """Per client, device option and shots per binding: the method of lowest predicted RMSE."""
    from qflhw.execution.mitigation.rmse import ErrorModel, best_method
    from qflhw.federation.assembly import device_seed

    methods = list(dict.fromkeys(plan.mitigation))
    if methods == ["none"]:
        return (lambda k, o, s: "none"), {}
    calls, keys, found = [], [], {}
    for k, opts in enumerate(options):
        for o, opt in enumerate(opts):
            args = (opt.twin, device_seed(spec, spec.clients[k]), spec.model.model_dump(mode="json"),
                    spec.mitigation.model_dump(mode="json"), methods)
            key = digest(json.dumps({"rmse": args, "code": _code_digest()}, sort_keys=True), 32)
            hit = store.get(key)
            if hit is None:
                calls.append(args)
                keys.append(((k, o), key))
            else:
                found[(k, o)] = hit
    if calls:
        log(f"mitigation: RMSE model on {len(calls)} twin(s)")
    for (ko, key), res in zip(keys, pool.map(error_model_task, calls)):
        store.put(key, res)
        found[ko] = res
    models = {ko: {m: ErrorModel(m, np.asarray(v["bias"]), np.asarray(v["unit_variance"]), int(v["circuits"]))
                   for m, v in res.items()} for ko, res in found.items()}
    rmse: dict[str, dict[int, dict[str, float]]] = {}
    for k, opts in enumerate(options):
        for o in range(len(opts)):
            label = spec.clients[k].name + ("" if len(opts) == 1 else f"@{opts[o].live.name}")
            rmse[label] = {s: {m: round(e.rmse(s), 4) for m, e in models[(k, o)].items()} for s in plan.shots}
    return (lambda k, o, s: best_method(models[(k, o)], s)), rmse


# ------------------------------------------------------------------------------ output
def format_plan(res: PlanResult) -> str:
    """The Pareto-front table, the chosen plan and what it would take to do better."""
    names = res.names
    lines = [f"plan for {res.spec.name}: budget ${res.budget}" + (f", target accuracy {res.target:g}" if res.target else "")]
    for n, opts in zip(names, res.options):
        lines.append(f"  {n}: " + "; ".join(f"{o.live.name} (twin {o.twin})" + (f" -- {o.note}" if o.note else "") for o in opts))
    if res.calibration.runs:
        lines.append("  " + res.calibration.describe())
    lines.append(f"  {res.priced} plans priced, {res.affordable} within budget, {res.rehearsals} rehearsals on the twins "
                 f"({res.cache_hits} cached), {res.seconds:.0f} s")
    if not res.front:
        cheapest = f"; the cheapest plan costs ${res.cheapest_usd.quantize(Decimal('0.01'))}" if res.cheapest_usd else ""
        lines.append(f"no plan fits in ${res.budget}{cheapest} (one round of the cheapest setting); raise the budget, "
                     "use fewer training rows (data.max_train_per_client) or cheaper devices")
        return "\n".join(lines)
    cal = bool(res.calibration.cost_ratio)
    bill_head = f"{'bill $':>9}" if cal else ""
    head = (f"   {'USD':>9}{bill_head} {'accuracy':>8} {'spread':>13} {'jobs':>5} {'shots':>9} {'wall':>8}  "
            f"{'gradient':<16} {'shots':>5} {'batch':>5} {'ep':>2} {'rnd':>3} {'frac':>4}  mitigation / devices")
    lines += ["", "Pareto front (cost vs accuracy predicted on the twins; spread: 95% range of the mean of 3 fresh seeds)", head]
    for c in res.front:
        s = c.setting
        lo, hi = c.spread()
        mark = "*" if c is res.best else " "
        over = "" if c.within(res.budget) else "  (over budget)"
        mit = ",".join(sorted(set(s.mitigation))) if len(set(s.mitigation)) == 1 else " ".join(
            f"{n}:{m}" for n, m in zip(names, s.mitigation))
        devs = " ".join(f"{n}:{res.options[k][i].live.name}" for k, (n, i) in enumerate(zip(names, s.devices))
                        if len(res.options[k]) > 1)
        grad = s.gradient + ("+adapt" if s.adaptive else "")
        bill = f"{float(c.calibrated_usd):>9.2f}" if cal else ""
        lines.append(
            f"{mark}  {float(c.usd):>9.2f}{bill} {c.mean:>8.3f} {lo:>6.3f}-{hi:<6.3f} {c.cost.tasks:>5} {c.cost.shots:>9} "
            f"{format_duration(c.wall_s):>8}  {grad:<16} {s.shots:>5} {s.batch_size:>5} {s.local_epochs:>2} {c.rounds:>3} "
            f"{s.client_fraction:>4g}  {mit}{' ' + devs if devs else ''}{over}"
        )
    lines.append("")
    if res.best is None:
        lines.append(f"no rehearsed plan fits in ${res.budget}")
    elif res.target is not None and not res.reached:
        lines.append(f"no plan within ${res.budget} is predicted to reach accuracy {res.target:g}; the closest (*) reaches "
                     f"{res.best.mean:.3f} for ${float(res.best.usd):.2f}")
        beyond = [c for c in res.front if not c.within(res.budget) and c.mean >= res.target]
        if beyond:
            lines.append(f"  reaching it would take ${float(beyond[0].usd):.2f}")
    else:
        b = res.best
        lo, hi = b.spread()
        lines.append(f"best plan (*): ${float(b.usd):.2f} of ${res.budget}, predicted accuracy {b.mean:.3f} "
                     f"({lo:.3f}-{hi:.3f}), {b.rounds} rounds, expected wall time {format_duration(b.wall_s)}")
    return "\n".join(lines)


def write_plan(res: PlanResult, out: Path) -> list[Path]:
    """The best plan as a spec on the live devices (``out``) and its twin rehearsal (``<out>-twins.toml``)."""
    live, twins = res.best_spec(), res.best_spec(twins=True)
    if live is None or twins is None or res.best is None:
        raise ConfigError(f"--out {out}: no plan fits in ${res.budget}, so there is nothing to write")
    out = Path(out)
    b = res.best
    lo, hi = b.spread()
    head = (f"Written by `qflhw plan` for {res.spec.name} with a ${res.budget} budget: estimated ${float(b.usd):.2f}, "
            f"predicted accuracy {b.mean:.3f} ({lo:.3f}-{hi:.3f} for 3 fresh seeds) on the twins, seeds {res.seeds}.\n"
            f"Check: qflhw estimate {out.name}; rehearse free: qflhw run {out.stem}-twins.toml")
    notes = [o.note for k, opts in enumerate(res.options) for i, o in enumerate(opts) if o.note and b.setting.devices[k] == i]
    if notes:
        head += "\n" + "\n".join(sorted(set(notes)))
    twin_path = out.with_name(f"{out.stem}-twins.toml")
    atomic_write(out, to_toml(live, head))
    atomic_write(twin_path, to_toml(twins, head.replace("Check:", "Twin rehearsal of the plan (free). Check:")))
    return [out, twin_path]


def default_cache(spec: JobSpec) -> Path:
    """``<spec.output>/.plan-cache``: rehearsals kept between plans."""
    return Path(spec.output) / ".plan-cache"

