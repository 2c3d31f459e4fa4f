"""The processes of a deployed federation: one SuperLink (server site), one SuperNode per client
site, and the Flower App bundle that ``flwr run`` submits to the SuperLink.

These functions only build commands and files; ``qflhw flower ...`` runs them and docs/flower.md
shows the commands they produce. The Flower App is a ``pyproject.toml`` naming qflhw's apps: every
site runs the ``qflhw`` it has installed, so the SuperLink is started with runtime dependency
installation off (nothing is downloaded into a site by a run).
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from qflhw.flower import QUIET_FLOWER
from qflhw.flower.site import CLIENT_KEY, DIR_KEY, SPEC_KEY

APP_PYPROJECT = """\
# A Flower App that runs qflhw's ServerApp and ClientApp (written by `qflhw flower app`).
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "qflhw-app"
version = "{version}"
description = "qflhw: quantum federated learning on each site's own QPU"
license = "Apache-2.0"
dependencies = []  # every site installs qflhw[flower] itself

[tool.flwr.app]
publisher = "qflhw"

[tool.flwr.app.components]
serverapp = "qflhw.flower.server:server_app"
clientapp = "qflhw.flower.client_app:client_app"

[tool.flwr.app.config]
spec = ""            # path of the job spec on the SuperLink machine, or:
spec-b64 = ""        # the spec itself, base64 (what `qflhw flower run` sends)
out = ""             # run directory on the SuperLink machine (default <spec.output>/<name>-<time>)
round-timeout = 3600.0   # seconds to wait for a round's reports; later ones are dropouts
wait-for-nodes = 60.0    # seconds to wait for every client's SuperNode before round 1
"""


@dataclass(frozen=True)
class TLS:
    """Where TLS material is; ``None`` fields are not passed."""

    ca_cert: str | None = None  # the CA that signed the SuperLink's certificate
    cert: str | None = None  # SuperLink only: its certificate (PEM)
    key: str | None = None  # SuperLink only: its private key (PEM)


def write_app(folder: Path) -> Path:
    """Write the Flower App (its ``pyproject.toml``) into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(APP_PYPROJECT.format(version=version("qflhw").split("+")[0]), encoding="utf-8")
    return folder


def flower_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Flower's commands: this Python's scripts first on PATH (the SuperLink and
    SuperNode start ``flower-superexec`` by name), and no telemetry or update check by default."""
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for key, value in QUIET_FLOWER.items():
        env.setdefault(key, value)
    return env


def _exe(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def superlink_command(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    tls: TLS | None = None,
    database: str | None = None,
    node_auth: bool = False,
) -> list[str]:
    """``flower-superlink`` for the server site; ``tls=None`` means ``--insecure`` (tests only);
    ``node_auth`` admits only SuperNodes whose public keys were registered (``flwr supernode register``)."""
    cmd = [_exe("flower-superlink"), "--host", host, "--port", str(port), "--disable-runtime-dependency-installation"]
    if node_auth:
        cmd.append("--enable-supernode-auth")
    if tls is None:
        cmd.append("--insecure")
    else:
        for flag, value in (("--ssl-ca-certfile", tls.ca_cert), ("--ssl-certfile", tls.cert), ("--ssl-keyfile", tls.key)):
            if value:
                cmd += [flag, str(Path(value).expanduser().resolve())]
    if database:
        cmd += ["--database", database]
    return cmd


def supernode_command(
    spec: str | Path,
    client: str,
    superlink: str,
    *,
    root_certificates: str | None = None,
    port: int = 9094,
    site_dir: str | Path | None = None,
    auth_key: str | Path | None = None,
) -> list[str]:
    """``flower-supernode`` for one client site: its spec file, client name and site folder go
    into the node config (they stay on this machine); ``root_certificates=None`` is ``--insecure``."""
    spec_path = Path(spec).expanduser().resolve()
    folder = Path(site_dir or Path.cwd() / "qflhw-site").expanduser().resolve()
    node_config = f'{SPEC_KEY}="{spec_path}" {CLIENT_KEY}="{client}" {DIR_KEY}="{folder}"'
    cmd = [_exe("flower-supernode"), "--superlink", superlink, "--port", str(port), "--node-config", node_config]
    if root_certificates is None:
        cmd.append("--insecure")
    else:
        cmd += ["--root-certificates", str(Path(root_certificates).expanduser().resolve())]
    if auth_key is not None:
        cmd += ["--auth-supernode-private-key", str(Path(auth_key).expanduser().resolve())]
    return cmd


def run_overrides(spec_text: str, out: str | None, *, round_timeout: float, wait_for_nodes: float) -> str:
    """The ``--run-config`` TOML for ``flwr run``: the spec inline, so the server needs no copy."""
    lines = [
        f'spec-b64 = "{base64.b64encode(spec_text.encode()).decode()}"',
        f"out = {_toml_str(out or '')}",
        f"round-timeout = {float(round_timeout)!r}",
        f"wait-for-nodes = {float(wait_for_nodes)!r}",
    ]
    return "\n".join(lines) + "\n"


def run_command(app_dir: Path, connection: str | None, overrides: Path, *, stream: bool = True) -> list[str]:
    """``flwr run`` of the qflhw app against a SuperLink connection (see ``flwr config list``)."""
    cmd = [_exe("flwr"), "run", str(app_dir)]
    if connection:
        cmd.append(connection)
    cmd += ["--run-config", str(overrides)]
    if stream:
        cmd.append("--stream")
    return cmd


def status_command(connection: str | None, run_id: str) -> list[str]:
    """``flwr ls`` of one run, as JSON (its ``status`` is ``finished:completed`` when it succeeded)."""
    return [_exe("flwr"), "ls", *([connection] if connection else []), "--run-id", str(run_id), "--format", "json"]


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
