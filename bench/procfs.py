"""/proc readings: CPU time of processes and their threads (clock ticks and schedstat
nanoseconds), the time a process waited for a CPU, its memory, the machine's busy time,
and processes found by their command line."""

from __future__ import annotations

import contextlib
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_utime_stime(pid: int) -> tuple[int, int] | None:
    """utime and stime of a process (all its threads), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(rest[11]), int(rest[12])


def proc_ticks(pid: int) -> int | None:
    times = _proc_utime_stime(pid)
    return sum(times) if times else None


def proc_sys_ticks(pid: int) -> int | None:
    """stime alone: the kernel's share (socket reads and writes, mostly)."""
    times = _proc_utime_stime(pid)
    return times[1] if times else None


def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def pids_matching(*needles: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(int(entry))
    return found


def group_ticks(pids: list[int]) -> dict[int, int]:
    return {pid: t for pid in pids if (t := proc_ticks(pid)) is not None}


def ticks_delta(before: dict[int, int], after: dict[int, int]) -> int:
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def proc_cpu_ns(pid: int) -> dict[int, int] | None:
    """CPU time of each of the process's threads, in nanoseconds (/proc schedstat). At
    N = 1 a server uses ~0.25 s in a run: clock ticks (10 ms) would make that ±4%."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    used = {}
    for tid in threads:
        path = f"/proc/{pid}/task/{tid}/schedstat"
        with contextlib.suppress(OSError, IndexError, ValueError), open(path) as fh:
            used[int(tid)] = int(fh.read().split()[0])
    return used


def cpu_s_between(before_ns: dict | None, after_ns: dict | None) -> float | None:
    """CPU seconds between two `proc_cpu_ns` readings; None if a thread ended in between
    (its time went with it: the caller falls back to clock ticks)."""
    if before_ns is None or after_ns is None or not before_ns.keys() <= after_ns.keys():
        return None
    return sum(used - before_ns.get(tid, 0) for tid, used in after_ns.items()) / 1e9


def run_delay_s(pid: int) -> float | None:
    """Time the process's main thread (the event loop) waited for a CPU, in seconds."""
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None
