"""TensorBoard scalars of a run, written after every round (``qflhw run --tensorboard DIR``).

Uses ``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` package: the optional
extra ``qflhw[tensorboard]``); no TensorFlow. One ``add_scalar`` per tag, so every tag lives in
the run's own folder ``DIR/<run id>`` and ``tensorboard --logdir DIR`` compares runs. The step
is the round (0-based, as in ``metrics.csv``):

* ``global/test_accuracy``, ``global/test_loss``: the global model after the round;
* ``global/shots``, ``global/cost_usd``: what the round's reports cost, all clients together;
* ``client/<name>/loss``, ``client/<name>/shots``, ``client/<name>/cost_usd``, ``client/<name>/esp``.

A resumed run purges what the stopped one wrote (``purge_step=0``) and writes the checkpointed
rounds again from the same numbers, so the curves never hold a round twice or miss one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflhw.errors import ConfigError

if TYPE_CHECKING:
    from qflhw.federation.loop import Federation


def require_tensorboard() -> None:
    """Fail in one line, before a run writes anything, when the extra is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'qflhw[tensorboard]'")


class TensorBoardHook:
    """A round hook (``Federation.round_hooks``) that writes the round's scalars."""

    def __init__(self, fed: Federation, log_root: str | Path):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_root) / fed.run_id
        resumed = fed.next_round > 0
        self.writer: Any = SummaryWriter(log_dir=str(self.log_dir), purge_step=0 if resumed else None)
        for r in range(fed.next_round):  # the checkpointed rounds, again: one value per round
            self.write_round(fed.rows, r)
        self.writer.flush()

    def __call__(self, fed: Federation, round_: int) -> None:
        self.write_round(fed.rows, round_)
        self.writer.flush()

    def write_round(self, rows: list[dict], round_: int) -> None:
        mine = [row for row in rows if row["round"] == round_]
        if not mine:
            return
        self._scalar("global/test_accuracy", mine[0]["global_test_accuracy"], round_)
        self._scalar("global/test_loss", mine[0]["global_test_loss"], round_)
        self._scalar("global/shots", sum(row["shots"] for row in mine), round_)
        self._scalar("global/cost_usd", sum(row["cost_usd"] for row in mine), round_)
        for row in mine:
            for field in ("loss", "shots", "cost_usd", "esp"):
                self._scalar(f"client/{row['client']}/{field}", row[field], round_)

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        v = float(value)
        if math.isfinite(v):  # a dropped client has no loss that round
            self.writer.add_scalar(tag, v, global_step=step)

    def close(self) -> None:
        self.writer.close()
