"""Personalization: what stays at the client, and two clients with opposite labelings.

Each client of the opposite-labelings runs holds digits 0 and 1, but client b's labels are
flipped, so no single model is right for both: the global model scores about one half on the
clients' rows together, while each personalized model (its own head, or PQFL's fine-tuned copy)
gets its own labeling nearly right.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from qflhw.config.spec import parse_spec
from qflhw.errors import ConfigError
from qflhw.training.classical import parameter_groups
from qflhw.training.model import HybridModel
from qflhw.training.personalization import Personalization, for_spec
from tests.helpers import TINY_SPEC


def _spec(extra: str, base: str = TINY_SPEC):
    return parse_spec(tomllib.loads(base + "\n" + extra))


def test_masks_name_the_head_and_the_last_layers():
    # 3 qubits, 2 rot-crx layers: 3*3 + 3 = 12 weights per layer, then a 3 x 2 head and 2 biases
    spec = parse_spec(tomllib.loads(TINY_SPEC.replace("qubits = 2\nlayers = 1", "qubits = 3\nlayers = 2")))
    net = HybridModel(24, 3, 2, seed=0)
    assert parameter_groups(net, 2) == [("layer0", 12), ("layer1", 12), ("head", 8)]
    head = Personalization("local-head", parameter_groups(net, 2))
    assert np.flatnonzero(head.local).tolist() == list(range(24, 32))
    layers = Personalization("local-layers", parameter_groups(net, 2), local_layers=1)
    assert np.flatnonzero(layers.local).tolist() == list(range(12, 32))
    assert for_spec(spec, net).shared_size == 32  # method none: everything shared
    assert Personalization("pqfl", parameter_groups(net, 2)).shared_size == 32  # pqfl's personal copy is separate
    flat = np.arange(32.0)
    np.testing.assert_array_equal(layers.merge(np.zeros(32), layers.shared(flat)), np.where(layers.local, 0, flat))


def test_local_layers_must_leave_a_shared_layer():
    with pytest.raises(ConfigError, match="local_layers .* must be below model.layers"):
        _spec('[personalization]\nmethod = "local-layers"\nlocal_layers = 1')  # the tiny model has one layer


OPPOSITE = """
name = "opposite"
seed = 5
rounds = {rounds}

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 16

[model]
qubits = 2
layers = 1

[training]
batch_size = 8
local_epochs = {epochs}
learning_rate = {lr}
shots = 0

[personalization]
method = "{method}"
adapt_steps = 8
learning_rate = 0.8
lam = 0.0

[[clients]]
name = "a"
device = "fake_fez"

[[clients]]
name = "b"
device = "fake_kyiv"
"""


@pytest.mark.parametrize(("method", "rounds", "epochs", "lr"), [("local-head", 4, 2, 1.0), ("pqfl", 3, 1, 0.4)])
def test_opposite_labelings_personalized_near_one_global_cannot(tmp_path, method, rounds, epochs, lr):
    from qflhw.federation.loop import Federation

    spec = parse_spec(tomllib.loads(OPPOSITE.format(method=method, rounds=rounds, epochs=epochs, lr=lr)))
    fed = Federation(spec, tmp_path / "run", progress=False)
    b = fed.clients[1]
    b.y, b.y_test = 1 - b.y, 1 - b.y_test  # client b calls every 0 a 1 and every 1 a 0
    summary = fed.run()
    clients = summary["client_test"]["clients"]
    print({n: (round(c["accuracy"], 3), round(c["personal_accuracy"], 3)) for n, c in clients.items()})
    for name in ("a", "b"):
        assert clients[name]["personal_accuracy"] >= 0.9, (name, clients[name])
    # one model for two opposite labelings: right on one client's rows is wrong on the other's
    assert summary["client_test"]["final"]["accuracy"] <= 0.6
    assert summary["client_test"]["personal_final"]["accuracy"] >= 0.9
    split = fed.assembly.split
    if method == "local-head":  # the server's head never moved: no client sent its own
        init = fed.assembly.global_model().get_flat()
        np.testing.assert_array_equal(np.asarray(summary["final_parameters"])[split.local], init[split.local])
        for c in fed.clients:
            assert c.personal.values is not None and not np.allclose(c.personal.values, init[split.local])


def test_reports_carry_no_local_coordinate(tmp_path):
    """In-process, every ClientResult the server receives has the shared coordinates only, and
    none of its values is one of the client's local ones."""
    from qflhw.federation.loop import Federation

    spec = _spec('[personalization]\nmethod = "local-head"')
    fed = Federation(spec, tmp_path / "run", progress=False)
    seen = []
    train = fed.train_selected

    def spy(round_):
        out = train(round_)
        seen.extend(out)
        return out

    fed.train_selected = spy  # type: ignore[method-assign]
    fed.run()
    split = fed.assembly.split
    assert seen and all(r.params is not None and len(r.params) == split.shared_size for r in seen)
    for c in fed.clients:
        assert c.personal.values is not None
        for r in seen:
            assert not np.isin(c.personal.values, r.params).any()
