"""The public API: cheap to import, every exported name resolves, and docs/api.md's scripts run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import qflhw
from tests.helpers import ROOT

DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def test_import_is_cheap_and_offline():
    """Importing qflhw loads no quantum SDK, torch or cloud client (they load on first use)."""
    code = "import sys, qflhw; print(sorted(m for m in ('qiskit', 'torch', 'braket', 'boto3', 'qiskit_ibm_runtime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_exported_name_resolves():
    for name in qflhw.__all__:
        assert getattr(qflhw, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Fedration'"):
        qflhw.Fedration  # noqa: B018
    assert issubclass(qflhw.QflhwError, Exception)


def test_every_exported_name_is_documented():
    undocumented = [n for n in qflhw.__all__ if n != "__version__" and f"`{n}" not in DOC]
    assert not undocumented, f"add {undocumented} to the table in docs/api.md"


@pytest.mark.parametrize("block", range(len(re.findall(r"```python\n", DOC))))
def test_docs_scripts_run(block, tmp_path, monkeypatch):
    code = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)[block]
    monkeypatch.chdir(tmp_path)  # runs/ is written here
    namespace: dict = {}
    exec(compile(code, f"docs/api.md block {block}", "exec"), namespace)  # noqa: S102
    if "result" in namespace and hasattr(namespace["result"], "run_dir"):
        result = namespace["result"]
        assert (tmp_path / result.run_dir / "summary.json").is_file() and (tmp_path / result.run_dir / "spec.json").is_file()
        assert len(result.metrics()) == 3 * 2  # 3 rounds x 2 clients
        assert qflhw.read_run(tmp_path / result.run_dir).summary == result.summary


def test_all_lists_exactly_the_lazy_exports():
    from qflhw import _EXPORTS

    assert set(qflhw.__all__) == set(_EXPORTS) | {"QflhwError", "__version__"}
