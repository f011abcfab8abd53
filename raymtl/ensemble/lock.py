"""One `raymtl ensemble` driver per RUN: `RUN/ensemble/driver.lock`.

Two drivers on the same RUN would both train the members neither has finished, and write the
same trial folders and Train checkpoints. The first driver writes the lock, a JSON record of
its owner, before it trains anything and removes it when it ends:

    {"host": "ip-10-0-0-5", "pid": 4242, "started": 1764684000.0, "heartbeat": 1764684030.0,
     "token": "…", "command": "raymtl ensemble --features … --out …"}

and rewrites `heartbeat` every `HEARTBEAT_S` while it runs. A second driver refuses to start,
naming the owner, unless the lock is stale: its owner ran on this host and that process is gone,
or (any host) its heartbeat is older than `STALE_AFTER_S`. A stale lock is taken over, with a
warning. A driver killed with SIGKILL leaves its lock behind; the rerun on the same host takes
it over at once, one on another host after `STALE_AFTER_S`.

On a local file system the lock is created atomically (O_EXCL). S3 has no create-if-absent in
pyarrow: there the driver writes its record, waits `S3_SETTLE_S` and reads it back, and backs
off if another driver's record is there instead; two drivers starting within the same second
could still both pass.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid

import pyarrow.fs as pafs

from raymtl import storage
from raymtl.errors import UserError
from raymtl.run import layout

log = logging.getLogger(__name__)

LOCK_FILE = layout.DRIVER_LOCK
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0  # ten missed heartbeats
S3_SETTLE_S = 1.0


class RunLockedError(UserError):
    """Another live driver holds the RUN's lock."""


def lock_path(run: str) -> str:
    _, path = storage.resolve(run)
    return layout.driver_lock(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_reason(owner: dict, now: float | None = None) -> str | None:
    """Why the lock of `owner` no longer holds, or None while it does."""
    now = time.time() if now is None else now
    if (
        owner.get("host") == socket.gethostname()
        and isinstance(owner.get("pid"), int)
        and not _pid_alive(owner["pid"])
    ):
        return f"its driver (pid {owner['pid']} on this host) is gone"
    age = now - float(owner.get("heartbeat", owner.get("started", 0)))
    if age > STALE_AFTER_S:
        return f"its last heartbeat was {age:.0f} s ago (stale after {STALE_AFTER_S:.0f} s)"
    return None


def describe_owner(owner: dict, now: float | None = None) -> str:
    now = time.time() if now is None else now
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("started", 0))))
    beat = now - float(owner.get("heartbeat", owner.get("started", 0)))
    who = f"host {owner.get('host')}, pid {owner.get('pid')}"
    return f"{who}, started {started}, last heartbeat {beat:.0f} s ago"


class RunLock:
    """`with RunLock(run):` holds RUN/ensemble/driver.lock for the block (heartbeat included)."""

    def __init__(self, run: str, command: str | None = None):
        self.run = run
        self.fs, _ = storage.resolve(run)
        self.path = lock_path(run)
        self.token = uuid.uuid4().hex
        self.command = command if command is not None else " ".join(["raymtl", *sys.argv[1:]])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = time.time()

    def _record(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "heartbeat": time.time(),
            "token": self.token,
            "command": self.command,
        }

    def _read(self) -> dict | None:
        try:
            return json.loads(storage.read_bytes(self.fs, self.path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # Half-written or unreadable: treat as held until its age says otherwise.
            info = self.fs.get_file_info(self.path)
            if info.type == pafs.FileType.NotFound:
                return None
            mtime = info.mtime.timestamp() if info.mtime else 0.0
            return {"host": "?", "pid": None, "started": mtime, "heartbeat": mtime}

    def _create(self) -> bool:
        """Create the lock file if there is none; True if this driver now holds it."""
        data = (json.dumps(self._record(), indent=1) + "\n").encode()
        parent = self.path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if isinstance(self.fs, pafs.LocalFileSystem):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        if storage.exists(self.fs, self.path):
            return False
        storage.write_bytes(self.fs, self.path, data)
        time.sleep(S3_SETTLE_S)  # a driver that wrote just after us has overwritten it by now
        owner = self._read()
        return owner is not None and owner.get("token") == self.token

    def acquire(self) -> None:
        for _ in range(3):
            if self._create():
                break
            owner = self._read()
            if owner is None:
                continue  # released meanwhile
            why = stale_reason(owner)
            if why is None:
                raise RunLockedError(
                    f"{self.run} is being trained by another `raymtl ensemble` ({describe_owner(owner)}; "
                    f"command: {owner.get('command', '?')}). Wait for it to finish, or stop it; a lock whose "
                    f"driver is gone is taken over (at once on the same host, after {STALE_AFTER_S:.0f} s "
                    f"without heartbeat from another host). Lock: {self.path}"
                )
            log.warning("taking over the stale lock %s: %s (%s)", self.path, why, describe_owner(owner))
            self.fs.delete_file(self.path)
        else:
            raise RunLockedError(f"could not take the lock {self.path}: other drivers keep taking it")
        self._thread = threading.Thread(target=self._beat, name="raymtl-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                owner = self._read()
                if owner is None or owner.get("token") != self.token:
                    log.error(
                        "lost the lock %s to another driver (%s)",
                        self.path,
                        describe_owner(owner) if owner else "removed",
                    )
                    return
                storage.write_bytes(
                    self.fs, self.path, (json.dumps(self._record(), indent=1) + "\n").encode()
                )
            except OSError as e:  # storage hiccup: try again at the next beat
                log.warning("lock heartbeat failed: %s", e)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        owner = self._read()
        if owner is not None and owner.get("token") == self.token:
            self.fs.delete_file(self.path)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
