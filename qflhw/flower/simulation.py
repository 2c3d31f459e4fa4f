"""Run a job spec in Flower's simulation engine: one virtual SuperNode per client, on this machine.

The ServerApp runs in this process and the ClientApps in Flower's Ray workers; messages, Context
state and failure handling are Flower's, so this is the deployment path without the network.
Every site reads the same spec file and journals under ``<run_dir>/sites``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from qflhw.config.spec import JobSpec
from qflhw.flower import require_flwr

require_flwr()  # at import: `qflhw run --engine flower-sim` fails before it writes anything


def run_simulation(
    spec: JobSpec,
    spec_path: str | Path,
    run_dir: Path,
    *,
    round_timeout: float = 3600.0,
    cpus: int | None = None,
    progress: bool = True,
    verbose: bool = False,
    tensorboard: str | Path | None = None,
) -> dict:
    """Run ``spec`` (read by the sites from ``spec_path``) in the simulation engine; the summary.

    ``cpus`` bounds how many clients train at once (default: the machine's cores);
    ``tensorboard``: the server also writes TensorBoard scalars under that folder.
    """
    from flwr.simulation import run_simulation as flower_run_simulation

    from qflhw.flower.client_app import make_client_app
    from qflhw.flower.server import make_server_app

    run_dir = Path(run_dir).resolve()
    sink: dict = {}
    server = make_server_app(
        spec, run_dir, sink=sink, round_timeout=round_timeout, wait_for_nodes=120.0, progress=progress,
        tensorboard=tensorboard,
    )
    client = make_client_app(Path(spec_path).resolve(), run_dir / "sites")
    cpus = cpus or os.cpu_count() or 1
    backend: dict[str, dict[str, Any]] = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "num_gpus": 0, "log_to_driver": verbose},
    }
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.WARNING)  # Flower's round logs would interleave with the progress bar
    flwr_logger.addFilter(_not_deprecation)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a Ray FutureWarning
    try:
        flower_run_simulation(server, client, num_supernodes=len(spec.clients), backend_config=backend)
    finally:
        flwr_logger.setLevel(level)
        flwr_logger.removeFilter(_not_deprecation)
    if "summary" not in sink:
        from qflhw.errors import QflhwError

        raise QflhwError(f"the Flower simulation of {spec.name} ended without a summary; see the log above")
    return sink["summary"]


def _not_deprecation(record: logging.LogRecord) -> bool:
    """Drop Flower's notice that its Python entry point to the simulation engine is deprecated.

    ``flwr run`` is its successor, but it needs a Flower App directory and a background SuperLink;
    qflhw pins Flower to a minor version whose entry point works (pyproject.toml) and is tested.
    """
    return "`run_simulation` function is deprecated" not in record.getMessage()
