"""Running the dashboard for tests: in this process on a thread (fast), or as the real
`raymtl dashboard` command in a subprocess. Both listen on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


@contextlib.contextmanager
def thread_server(app):
    """uvicorn on 127.0.0.1 and a free port, in a thread; yields the port."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(
    ready, proc: subprocess.Popen, what: str, timeout_s: float, every_s: float, output=str
) -> None:
    """Poll `ready()` until it is true (an OSError counts as not yet: the port is not open).
    RuntimeError naming `what`, with `output()` (the server's output so far), when `proc` exits or
    `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{output()}")
        time.sleep(every_s)


def http_ok(url: str, timeout_s: float = 5) -> bool:
    """`url` answers 200."""
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.status == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cli_server(runs, timeout_s: float = 60):
    """`raymtl dashboard RUN... --port P` as a user starts it; yields (port, its first output line)."""
    port = free_port()
    # The `raymtl` console script's entry point (`python -m raymtl.cli` would load cli.py twice).
    entry = "import sys; from raymtl.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", entry, "dashboard", *map(str, runs), "--port", str(port)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        wait_until_ready(
            lambda: request(port, "/api/overview")[0] == 200,
            proc,
            "`raymtl dashboard`",
            timeout_s,
            0.2,
            lambda: line + proc.stdout.read(),
        )
        yield port, line
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def request(port: int, path: str, method: str = "GET", headers: dict | None = None):
    """(status, headers, body bytes); the path goes out exactly as given (no normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", (headers or {}).get("Host", f"127.0.0.1:{port}"))
        for k, v in (headers or {}).items():
            if k != "Host":
                conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_json(port: int, path: str):
    status, headers, body = request(port, path)
    assert status == 200, (path, status, body[:300])
    assert headers["content-type"] == "application/json"
    return json.loads(body)
