"""On the Flower path, what a site sends is the shared part of its model only: personalized
parameters (``[personalization] method = "local-head"``) appear in no training or evaluation
report, while the site's own state keeps them (it stays in the SuperNode's Context)."""

from __future__ import annotations

import pickle
import struct

import numpy as np

from qflhw.flower import require_flwr

require_flwr()

from qflhw.config.spec import load_spec  # noqa: E402
from qflhw.flower.records import EvalReport, Instruction, Report, spec_digest  # noqa: E402
from qflhw.flower.site import Site  # noqa: E402
from tests.helpers import TINY_SPEC  # noqa: E402


def _numbers_and_bytes(content) -> tuple[list[float], bytes]:  # noqa: ANN001
    """Every number and every array byte a Flower RecordDict carries."""
    numbers: list[float] = []
    raw = b""
    for rec in content.array_records.values():
        for arr in rec.values():
            raw += arr.data
            numbers.extend(arr.numpy().ravel().tolist())
    for rec in [*content.metric_records.values(), *content.config_records.values()]:
        for v in rec.values():
            vals = v if isinstance(v, list) else [v]
            numbers.extend(float(x) for x in vals if isinstance(x, (int, float)))
            raw += b"".join(x if isinstance(x, bytes) else str(x).encode() for x in vals)
    return numbers, raw


def test_site_reports_never_carry_personal_parameters(tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TINY_SPEC + '\n[personalization]\nmethod = "local-head"\n')
    spec = load_spec(spec_file)
    sites = {n: Site(spec, n, source=str(spec_file), run_dir=tmp_path / n) for n in ("a", "b")}
    split = sites["a"].client.personal.split
    params = sites["a"].client.model.get_flat()  # the seeded initial model, as the server holds it
    states: dict[str, bytes | None] = {"a": None, "b": None}
    sent = []
    for r in range(spec.rounds):
        ins = Instruction(params, r, ("a", "b"), spec_digest(spec))
        shared = []
        for name, site in sites.items():
            report, states[name] = site.train(ins, states[name])
            content = report.content()
            back = Report.read(content)
            assert back.result.params is not None and len(back.result.params) == split.shared_size
            shared.append(back.result.params)
            sent.append(content)
        params = split.merge(params, np.mean(shared, axis=0))
        ins = Instruction(params, r, ("a", "b"), spec_digest(spec))
        for name, site in sites.items():
            ev, states[name] = site.evaluate(ins, states[name])
            assert ev is not None and ev.result.personal is not None
            sent.append(ev.content())
            assert EvalReport.read(ev.content()).result.scores.rows == len(site.client.y_test)
    for name in ("a", "b"):
        state = states[name]
        assert state is not None
        personal = np.asarray(pickle.loads(state)["client"]["personal"]["values"])
        assert len(personal) == split.size - split.shared_size
        assert not np.allclose(personal, params[split.local])  # trained: not the server's untouched head
        for content in sent:
            numbers, raw = _numbers_and_bytes(content)
            for v in personal:
                assert float(v) not in numbers
                assert struct.pack("<d", v) not in raw and struct.pack(">d", v) not in raw and repr(float(v)).encode() not in raw
