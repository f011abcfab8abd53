"""A real MLflow tracking server for tests: `mlflow server` on loopback with a SQLite store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from tests.results.servers import free_port, http_ok, wait_until_ready


@contextlib.contextmanager
def mlflow_server(root: Path, timeout_s: float = 300) -> Iterator[str]:
    """Start it, wait until /health answers, yield its URI; stop it (its whole process group:
    the server runs its app in worker processes) at the end."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(
            lambda: http_ok(f"{uri}/health", 2),
            proc,
            "`mlflow server`",
            timeout_s,
            0.5,
            (root / "server.log").read_text,
        )
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
