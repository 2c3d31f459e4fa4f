"""Federation across machines with Flower: each client trains at its own site, on its own QPU.

The same job spec runs in-process (``qflhw run``), in Flower's simulation engine
(``qflhw run --engine flower-sim``) or deployed: one SuperLink for the server and one SuperNode per
client site (``qflhw flower superlink / supernode / run``, see docs/flower.md). The round loop is
:class:`qflhw.federation.loop.Federation`'s in all three; only the way a round's training reaches the
clients differs. A site reads its device profile, data partition and provider credentials from
its own disk and environment: the server sends global parameters, nothing else.

Modules: ``records`` (what travels), ``site`` (a client site), ``client_app`` / ``server``
(the Flower apps), ``simulation`` (the simulation engine), ``deploy`` (the processes), ``cli``.
Flower is imported only by those modules, so ``import qflhw`` never imports ``flwr``.
"""

from __future__ import annotations

import os
import warnings

from qflhw.errors import MissingExtra

# Flower phones home (anonymous telemetry, an update check) unless told not to; a federation of
# QPU sites should not, so these are the defaults of every Flower process qflhw starts or runs.
# Setting either variable yourself wins.
QUIET_FLOWER = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}


def require_flwr() -> None:
    """Import Flower with :data:`QUIET_FLOWER` defaults, or raise :class:`MissingExtra` with the
    install command when it is not installed."""
    for key, value in QUIET_FLOWER.items():
        os.environ.setdefault(key, value)  # read by Flower when it is imported
    try:
        with warnings.catch_warnings():  # Flower 1.41's typer import warns about click 9, not about us
            warnings.simplefilter("ignore", DeprecationWarning)
            import flwr  # noqa: F401
    except ImportError as err:
        raise MissingExtra(
            "Flower is not installed; install the extra: pip install 'qflhw[flower]'"
        ) from err
