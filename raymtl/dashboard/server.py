"""Serving the dashboard with uvicorn, and the command line that starts it (for the demo)."""

from __future__ import annotations

import ipaddress
import logging
import shlex
import sys
from typing import Sequence

import uvicorn

from raymtl.dashboard.app import create_app
from raymtl.errors import UserError

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def command_line(runs: Sequence[str], port: int | None = None) -> str:
    """The `raymtl dashboard` command for these runs, quoted for a POSIX shell."""
    port_arg = f" --port {port}" if port is not None else ""
    return "raymtl dashboard " + " ".join(shlex.quote(str(r)) for r in runs) + port_arg


def serve(runs: Sequence[str], host: str = "127.0.0.1", port: int = 8000, refresh_s: float = 5.0) -> None:
    """Load the runs (a bad RUN is a UserError before anything listens), then serve until Ctrl-C."""

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    if refresh_s <= 0:
        raise UserError(f"--refresh must be positive, got {refresh_s}")
    loopback = is_loopback(host)
    if not loopback:
        print(
            f"warning: serving on {host}, not only on this machine: anyone who can reach {host}:{port} "
            "can read these results (the dashboard is read-only and has no login)",
            file=sys.stderr,
        )
    app = create_app(runs, refresh_s=refresh_s, loopback=loopback)
    names = ", ".join(r.name for r in app.state.data.refs)
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard of {names} on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", server_header=False, access_log=False
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except (OSError, SystemExit):  # uvicorn logs the reason and exits when it cannot bind
        if server.started:
            raise
        raise UserError(
            f"cannot listen on {host}:{port} (in use, or not an address of this machine)"
        ) from None
