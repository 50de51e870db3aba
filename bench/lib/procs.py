"""Child processes and /proc for the benchmarks (Linux only).

Starting and stopping process groups, free ports, the CPU time of a process (or of a postmaster and
its backends), memory (RSS, PSS, a process tree's RSS), and the CPU that processes outside a
benchmark used while it measured, with the hypervisor's steal time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


# --- child processes --------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


def spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO) -> Child:
    """Start ``cmd`` in a process group (session) of its own, stdout and stderr into ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
    return Child(name, proc, log)


def stop_group(child: Child, grace_s: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace_s``."""
    if child.proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(child.proc.pid, signal.SIGTERM)
    try:
        child.proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        child.proc.wait(5)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int, needle: str) -> bool:
    """Whether ``pid`` runs and its command line still contains ``needle`` (not a reused id)."""
    return needle in cmdline(pid)


def kill_pid(pid: int, needle: str) -> None:
    """Kill one leftover process by id, only while its command line still matches (no PID reuse)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not alive(pid, needle):
            return
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        for _ in range(50):
            if not alive(pid, needle):
                return
            time.sleep(0.1)


def postmaster_pid(pgdata: Path | str) -> int:
    """The Postgres server's process id, from its data directory."""
    with open(Path(pgdata) / "postmaster.pid") as fh:
        return int(fh.readline())


# --- the process table ------------------------------------------------------------------------------


def proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: index 0 is field 3 (state), 1 the parent."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _stats() -> dict[int, list[str]]:
    """/proc/PID/stat fields (as proc_stat) of every process."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = proc_stat(entry.name)
            if f is not None:
                out[int(entry.name)] = f
    return out


def children_of(ppid: int) -> list[int]:
    return [pid for pid, f in _stats().items() if int(f[1]) == ppid]


def find_child(ppid: int, needle: str) -> int:
    """The child of ``ppid`` whose command line contains ``needle``; 0 when there is none."""
    return next((pid for pid in children_of(ppid) if needle in cmdline(pid)), 0)


def _with_descendants(roots: set[int], parents: dict[int, int]) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo += kids.get(pid, [])
    return out


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents = {pid: int(f[1]) for pid, f in _stats().items()}
    return sorted(_with_descendants({root}, parents))


# --- CPU time -----------------------------------------------------------------------------------------


def tick_cpu_s(pid: int, reaped_children: bool = False) -> float:
    """utime + stime of all threads (+ cutime + cstime), in clock ticks: coarse but complete."""
    f = proc_stat(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12])
    return (ticks + int(f[13]) + int(f[14]) if reaped_children else ticks) * TICK_S


def reaped_cpu_s(pid: int) -> float:
    """CPU of the children ``pid`` waited for after they exited (cutime + cstime, clock ticks): for a
    postmaster, its backends and workers that are gone."""
    return tick_cpu_s(pid, reaped_children=True) - tick_cpu_s(pid)


def sched_cpu_s(pid: int) -> float | None:
    """Sum of se.sum_exec_runtime over the live threads (/proc/PID/task/*/sched, sub-microsecond);
    None where the kernel does not expose it. Threads that already exited are not counted."""
    total, found = 0.0, False
    try:
        tasks = list(os.scandir(f"/proc/{pid}/task"))
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"{task.path}/sched") as fh:
                for line in fh:
                    if line.startswith("se.sum_exec_runtime"):
                        total += float(line.split(":", 1)[1])
                        found = True
                        break
        except OSError:
            continue  # the thread just exited
    return total / 1000 if found else None


def cpu_s(pid: int) -> float:
    """CPU time of one process, all its live threads: from the scheduler where the kernel exposes it,
    otherwise in clock ticks; 0 for a process that is gone."""
    precise = sched_cpu_s(pid)
    return precise if precise is not None else tick_cpu_s(pid)


def family(root: int) -> list[int]:
    """``root`` and its children (a postmaster and its backends), as they are now."""
    return [root, *children_of(root)] if proc_stat(root) is not None else []


def cpu_source() -> str:
    if sched_cpu_s(os.getpid()) is not None:
        return "scheduler runtime per thread"
    return f"clock ticks of {TICK_S * 1000:.0f} ms"


# --- memory -------------------------------------------------------------------------------------------


def status_kb(pid: int, key: str) -> int:
    """A kB field of /proc/PID/status (VmRSS, VmHWM, ...); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages split between the processes that map them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and every process below it (shared pages counted once per process)."""
    return sum(status_kb(pid, "VmRSS") for pid in descendants(root))


# --- other load ---------------------------------------------------------------------------------------


def steal_s() -> float:
    """CPU time the hypervisor gave to other guests while this one wanted to run (/proc/stat)."""
    with open("/proc/stat") as fh:
        fields = fh.readline().split()
    return int(fields[8]) * TICK_S if len(fields) > 8 else 0.0


class OtherLoad:
    """CPU used during a window by processes that are not the benchmark's, in % of one CPU: near 0 on a
    quiet machine. The benchmark's are this process, the ``roots`` given (a postmaster that is not a
    child of it) and every process below them, found again at each reading. Counted from /proc/PID/stat
    as the change of the sum over all the other processes, each with the children it reaped: a process
    that exits meanwhile moves its time into its parent's cutime/cstime, so the sum counts only its
    time inside the window (a difference per process would count the whole life of every child reaped
    meanwhile: several CPUs' worth on a machine where test suites start and stop servers)."""

    def __init__(self, *roots: int) -> None:
        self.roots = {os.getpid(), *roots}

    def _others(self) -> float:
        stats = _stats()
        own = _with_descendants(self.roots, {pid: int(f[1]) for pid, f in stats.items()})
        return sum(sum(int(x) for x in f[11:15]) for pid, f in stats.items() if pid not in own) * TICK_S

    def start(self) -> None:
        self.t0, self.before, self.steal0 = time.monotonic(), self._others(), steal_s()

    def pct(self) -> tuple[float, float]:
        """(other processes, time stolen by the hypervisor), each in % of one CPU since start()."""
        wall = time.monotonic() - self.t0
        used = max(0.0, self._others() - self.before)  # < 0 only if a dead process's time went nowhere
        return 100 * used / wall, 100 * (steal_s() - self.steal0) / wall
