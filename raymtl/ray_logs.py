"""Ray's own logs off the terminal: Ray's, Ray Data's, Ray Train's and Ray Tune's loggers write to
RUN/logs/ray.log instead, and only their errors still reach the terminal. `raymtl -v` leaves
them on the terminal as Ray sets them up.

Why: Ray Data logs an execution plan for every dataset it runs, Train and Tune log their set-up,
and Ray workers' output is echoed to the driver: hundreds of lines a run that bury our own. They
are still what one reads when something goes wrong, so they are kept in the RUN. An s3:// RUN
cannot be appended to, so its Ray log is a local file under the temporary folder, and a log line
says where. A verb without a RUN (featurize writes FEATURES, not a RUN) keeps Ray's logs on the
terminal from WARNING up and drops the rest.

Workers' own stdout and stderr stay in Ray's session logs unless verbose: `ensure_ray` asks
`log_to_driver()` (raymtl.ray_session), and ray.log names the session's log folder.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ray.data import DataContext

from raymtl import storage
from raymtl.run import layout

log = logging.getLogger(__name__)

RAY_LOGGER = "ray"
# Ray Data's logger keeps its own handlers and does not propagate; Train's and Tune's have none
# and reach the "ray" logger's.
RAY_LOGGERS = (RAY_LOGGER, "ray.data", "ray.train", "ray.tune")
FILE_LEVEL = logging.INFO  # Ray Data logs each scheduling step at DEBUG
TERMINAL_LEVEL = logging.ERROR  # what of Ray's logs reaches the terminal when they have a file
NO_FILE_LEVEL = logging.WARNING  # ... and when they have none
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PinnedFormat:
    """A handler whose formatter is set once: `ray.init` sets its own on every handler of the
    "ray" logger (ray._private.ray_logging.setup_logger), ours included."""

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        if getattr(self, "formatter", None) is None:
            super().setFormatter(fmt)


class StderrHandler(PinnedFormat, logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (as logging's last resort does), so
    a display that redirects stderr (raymtl.live) or a test capturing it sees the line."""

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


class PinnedStreamHandler(PinnedFormat, logging.StreamHandler):
    pass


class LazyFileHandler(PinnedFormat, logging.FileHandler):
    """A file handler that makes its folder and file with the first record: a command that
    fails before Ray says anything leaves no logs/ folder in the RUN."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@dataclass
class RayLogRoute:
    """Where Ray's logs go now; `undo` puts Ray's loggers back as they were."""

    path: Path | None  # the local file Ray's logs go to; None: the terminal only
    verbose: bool
    saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = field(default_factory=list)
    added: list[logging.Handler] = field(default_factory=list)

    def undo(self) -> None:
        global _ROUTE
        for logger, handlers, propagate, level in self.saved:
            logger.handlers[:] = handlers
            logger.propagate, logger.level = propagate, level
        for h in self.added:
            h.close()
        self.saved, self.added = [], []
        if _ROUTE is self:
            _ROUTE = None


_ROUTE: RayLogRoute | None = None


def local_log_path(run: str) -> tuple[Path, bool]:
    """The local file for `run`'s Ray log, and whether it is in the RUN itself (a local RUN) or
    stands in for it under the temporary folder (a remote one: nothing is asked of its store)."""
    if "://" not in run or run.startswith("file://"):
        return Path(layout.ray_log(storage.resolve(run)[1])), True
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", run).strip("_")
    return Path(tempfile.gettempdir()) / "raymtl" / slug / layout.LOGS_DIR / layout.RAY_LOG, False


def quiet_ray_output() -> None:
    """Ray's own terminal output that is not logging, off.

    Ray Data's progress bars (the env variable reaches Ray's workers, which inherit the driver's
    environment; the context is the driver's, copied to Train's workers): without tqdm installed
    each pass would also warn that progress bars are disabled. And Tune's new console output,
    which prints its settings box and "View detailed results here" with `print` even at
    verbose=0; the older reporter it replaces prints nothing at verbose=0."""
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.verbose_progress = False


def route_ray_logs(
    run: str | None,
    verbose: bool,
    *,
    stream: TextIO | None = None,
    formatter: logging.Formatter | None = None,
) -> RayLogRoute:
    """Send Ray's loggers to `run`'s ray.log (None: nowhere but the terminal), keeping their
    errors on the terminal (`stream`, default sys.stderr, with `formatter`); with `verbose`,
    leave them as Ray set them up. Replaces an earlier routing of this process."""
    global _ROUTE
    if _ROUTE is not None:
        _ROUTE.undo()
    loggers = [logging.getLogger(name) for name in RAY_LOGGERS]
    route = RayLogRoute(None, verbose, [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in loggers])
    _ROUTE = route
    if verbose:
        return route  # Ray's progress bars and Tune's output too
    quiet_ray_output()
    for lg in loggers:
        # Ray's console handlers go; its own files (Ray Data's, in the session folder) stay.
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lg.removeHandler(h)
        if lg.name != RAY_LOGGER:
            lg.propagate = True  # to the "ray" logger's handlers below, and no further
    ray_logger = logging.getLogger(RAY_LOGGER)
    ray_logger.propagate = False  # never the root logger's terminal handler
    terminal = StderrHandler() if stream is None else PinnedStreamHandler(stream)
    terminal.setLevel(NO_FILE_LEVEL if run is None else TERMINAL_LEVEL)
    terminal.setFormatter(formatter or logging.Formatter(FILE_FORMAT))
    route.added.append(terminal)
    if run is not None:
        path, in_run = local_log_path(run)
        file = LazyFileHandler(path)
        file.setLevel(FILE_LEVEL)
        file.setFormatter(logging.Formatter(FILE_FORMAT))
        route.added.append(file)
        route.path = path
        if in_run:
            log.debug("Ray's logs go to %s", path)
        else:
            log.info("Ray's logs of %s go to %s (a remote RUN: kept on this machine)", run, path)
    for h in route.added:
        ray_logger.addHandler(h)
    return route


def log_to_driver() -> bool:
    """Whether Ray should echo its workers' output here: only when Ray's logs are not routed
    (library use) or the user asked for them (`-v`)."""
    return _ROUTE is None or _ROUTE.verbose


def note_session(logs_dir: str | None) -> None:
    """Record in ray.log where Ray keeps its workers' output (when it is not echoed here)."""
    if _ROUTE is not None and _ROUTE.path is not None and logs_dir:
        logging.getLogger(RAY_LOGGER).info("Ray workers' stdout and stderr: %s", logs_dir)
