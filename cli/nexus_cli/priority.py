"""Give recording (ingest, the embedded database) a lower CPU priority than the proxy.

Recording is off the hot path: under load the proxy should get the CPU first and ingest catch up
when the machine is idle. A plain nice value is not enough on kernels with autogroup scheduling
(most desktops), where CPU is shared per session first; there the session's autogroup gets the
nice value too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

NICE = 10
log = logging.getLogger("nexus.dev")


def lower(pid: int, threads: bool = False) -> None:
    """Lower ``pid`` (and its autogroup). ``threads``: only the calling thread, not the whole process."""
    if not hasattr(os, "setpriority"):
        return
    try:
        import threading

        target = threading.get_native_id() if threads else pid
        os.setpriority(os.PRIO_PROCESS, target, NICE)
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.exists():
            autogroup.write_text(str(NICE))
    except OSError as exc:
        log.info("could not lower the priority of %s: %s", pid, exc)


def lower_tree(pid: int | None) -> None:
    """A server and the children it has now (new children inherit the parent's value)."""
    if pid is None:
        return
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        lower(proc.pid)
