"""``qflhw flower ...``: start the processes of a deployed federation and submit runs to it.

``superlink`` (server site), ``supernode`` (one per client site), ``run`` (submit a spec) and
``app`` (write the Flower App for plain ``flwr run``). Each prints or replaces itself with the
Flower command it builds (``--print-command`` shows it without running), so sites can also use
systemd, containers or Flower's own commands. Importing this module does not import Flower.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from qflhw.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``qflhw flower`` and its subcommands on the top-level parser's subparsers."""
    p = sub.add_parser("flower", help="federate across machines with Flower (SuperLink, SuperNodes)",
                       description="Run a federation across machines with Flower; see docs/flower.md.")
    fsub = p.add_subparsers(dest="flower_command", required=True)

    s = fsub.add_parser("superlink", help="start the server site's Flower SuperLink")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    s.add_argument("--port", type=int, default=8000, help="port of the SuperLink's HTTP API (default 8000)")
    _tls_server_args(s)
    s.add_argument("--database", help="SQLite file for the SuperLink's state (default: in memory)")
    s.add_argument("--enable-supernode-auth", action="store_true",
                   help="admit only SuperNodes whose public key was registered with `flwr supernode register`")
    s.add_argument("--print-command", action="store_true", help="print the flower-superlink command, do not run it")
    s.set_defaults(func=_cmd_superlink)

    s = fsub.add_parser("supernode", help="start one client site's Flower SuperNode")
    s.add_argument("spec", help="the job spec on this machine (its client entry names this site's device)")
    s.add_argument("--client", required=True, help="which client of the spec this site is")
    s.add_argument("--superlink", required=True, help="the SuperLink's HOST:PORT")
    s.add_argument("--root-certificates", help="CA certificate (PEM) that signed the SuperLink's certificate")
    s.add_argument("--insecure", action="store_true", help="no TLS (loopback tests only)")
    s.add_argument("--port", type=int, default=9094, help="local port of this SuperNode's runtime API (default 9094)")
    s.add_argument("--dir", help="site folder for job journals (default ./qflhw-site)")
    s.add_argument("--auth-key", help="this site's private key (OpenSSH ECDSA) when the SuperLink authenticates nodes")
    s.add_argument("--print-command", action="store_true", help="print the flower-supernode command, do not run it")
    s.set_defaults(func=_cmd_supernode)

    s = fsub.add_parser("run", help="submit a job spec to a SuperLink and follow it")
    s.add_argument("spec", help="job spec (TOML); sent inline, the server needs no copy")
    s.add_argument("connection", nargs="?", help="SuperLink connection name in ~/.flwr/config.toml (default: its default)")
    s.add_argument("--out", help="run directory on the SuperLink machine (default <spec.output>/<name>-<time> there)")
    s.add_argument("--round-timeout", type=float, default=3600.0, help="seconds to wait for a round's reports")
    s.add_argument("--wait-for-nodes", type=float, default=60.0, help="seconds to wait for all SuperNodes before round 1")
    s.add_argument("--no-stream", action="store_true", help="submit and return instead of following the logs")
    s.set_defaults(func=_cmd_run)

    s = fsub.add_parser("app", help="write the Flower App (pyproject.toml) for plain `flwr run`")
    s.add_argument("folder")
    s.set_defaults(func=_cmd_app)


def _tls_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ssl-ca-certfile", help="CA certificate (PEM)")
    p.add_argument("--ssl-certfile", help="the SuperLink's certificate (PEM), signed by the CA")
    p.add_argument("--ssl-keyfile", help="the SuperLink's private key (PEM)")
    p.add_argument("--insecure", action="store_true", help="no TLS (loopback tests only)")


def _exec(cmd: list[str], print_only: bool) -> int:
    from qflhw.flower.deploy import flower_env

    if print_only:
        print(shlex.join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, flower_env())  # the Flower process takes over this one (signals, exit code)
    return 0  # not reached


def _cmd_superlink(args: argparse.Namespace) -> int:
    from qflhw.flower import require_flwr
    from qflhw.flower.deploy import TLS, superlink_command

    require_flwr()
    files = [args.ssl_ca_certfile, args.ssl_certfile, args.ssl_keyfile]
    if args.insecure and any(files):
        raise ConfigError("flower superlink: give either --insecure or the three --ssl-* files, not both")
    if not args.insecure and not all(files):
        raise ConfigError(
            "flower superlink: TLS needs --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile "
            "(see docs/flower.md); --insecure is for loopback tests only"
        )
    for f in filter(None, files):
        if not Path(f).is_file():
            raise ConfigError(f"flower superlink: no such file {f}")
    tls = None if args.insecure else TLS(args.ssl_ca_certfile, args.ssl_certfile, args.ssl_keyfile)
    cmd = superlink_command(args.host, args.port, tls=tls, database=args.database, node_auth=args.enable_supernode_auth)
    return _exec(cmd, args.print_command)


def _cmd_supernode(args: argparse.Namespace) -> int:
    from qflhw.config.profiles import load_profile
    from qflhw.config.spec import load_spec
    from qflhw.flower import require_flwr
    from qflhw.flower.deploy import supernode_command

    require_flwr()
    spec = load_spec(args.spec)  # fail here, not at the first round
    names = [c.name for c in spec.clients]
    if args.client not in names:
        raise ConfigError(f"{args.spec}: no client {args.client!r}; its clients are {', '.join(names)}")
    load_profile(spec.clients[names.index(args.client)].device)
    if args.insecure == bool(args.root_certificates):
        raise ConfigError("flower supernode: give --root-certificates CA.pem (TLS) or --insecure (loopback tests only)")
    for f in filter(None, [args.root_certificates, args.auth_key]):
        if not Path(f).is_file():
            raise ConfigError(f"flower supernode: no such file {f}")
    cmd = supernode_command(
        args.spec, args.client, args.superlink, root_certificates=args.root_certificates, port=args.port,
        site_dir=args.dir, auth_key=args.auth_key,
    )
    return _exec(cmd, args.print_command)


def _cmd_run(args: argparse.Namespace) -> int:
    from qflhw.config.spec import load_spec
    from qflhw.flower import require_flwr
    from qflhw.flower.deploy import flower_env, run_command, run_overrides, write_app

    require_flwr()
    load_spec(args.spec)  # a spec error is ours to report, before anything is submitted
    text = Path(args.spec).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="qflhw-flower-") as tmp:
        app = write_app(Path(tmp) / "app")
        overrides = Path(tmp) / "run-config.toml"
        overrides.write_text(
            run_overrides(text, args.out, round_timeout=args.round_timeout, wait_for_nodes=args.wait_for_nodes),
            encoding="utf-8",
        )
        cmd = run_command(app, args.connection, overrides, stream=not args.no_stream)
        env = flower_env()
        run_id = None
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:  # type: ignore[union-attr]
                sys.stdout.write(line)
                sys.stdout.flush()
                found = re.search(r"started run (\d+)", line)
                run_id = run_id or (found and found.group(1))
        if proc.returncode or args.no_stream or run_id is None:
            return proc.returncode
    return _run_outcome(args.connection, run_id, env)


def _run_outcome(connection: str | None, run_id: str, env: dict[str, str]) -> int:
    """0 if the run completed; else one line with Flower's reason and 1 (``flwr run`` says 0 either way)."""
    from qflhw.flower.deploy import status_command

    out = subprocess.run(status_command(connection, run_id), env=env, capture_output=True, text=True, check=False)
    try:
        run = json.loads(out.stdout)["runs"][0]
    except (ValueError, KeyError, IndexError):
        print(f"qflhw: could not read the status of run {run_id} (flwr ls said: {out.stdout.strip()[-300:]})", file=sys.stderr)
        return 1
    if run.get("status") == "finished:completed":
        return 0
    print(f"qflhw: run {run_id} {run.get('status')}: {run.get('status-details', '')}", file=sys.stderr)
    return 1


def _cmd_app(args: argparse.Namespace) -> int:
    from qflhw.flower.deploy import write_app

    folder = write_app(Path(args.folder))
    print(f"wrote {folder / 'pyproject.toml'}; submit with: flwr run {folder} <connection> --run-config 'spec=\"/path/on/server.toml\"'")
    return 0
