"""A client's own estimate of how noisy its numbers are this round, for SpoQFL-style aggregation.

SpoQFL (Rahman, Pokharel, Nguyen, arXiv:2507.12492) has each client evaluate its noise level before
it sends an update, and suppress or skip the update when the noise is high. How the paper
estimates that noise is not in what we could read, so the rule here is **qflhw's own**:

    xi = (1 - ESP) + sqrt(v) / ESP

- ``ESP`` is the estimated success probability of the client's compiled circuit on its *current*
  calibration (it changes when the device drifts). Under a global depolarizing picture an
  expectation value shrinks to about ``ESP`` times its ideal value, so ``1 - ESP`` is the relative
  bias of the client's numbers.
- ``v`` is the mean squared standard error of the circuit values the client observed during the
  round (shot noise, and the variance mitigation adds). Rescaled to the ideal scale it grows by
  ``1 / ESP``, so ``sqrt(v) / ESP`` is their relative spread.

``xi`` is thus a relative error of the client's estimates: about 0.2 on a good device with a few
hundred shots, near 1 or more on a bad one. In exact mode (``v = 0``) it is ``1 - ESP``.
"""

from __future__ import annotations

import math

ESP_FLOOR = 1e-3  # an ESP of 0 would make the spread term infinite


def estimate_noise(esp: float, variance: float) -> float:
    """The noise level ``xi`` of the module docstring from a round's ESP and observed variance."""
    if not (0 <= esp <= 1) or not (variance >= 0) or not math.isfinite(variance):
        return float("nan")
    return (1.0 - esp) + math.sqrt(variance) / max(esp, ESP_FLOOR)
