"""`--profile`: py-spy attached to a server for one row, and its samples summed by package
and by function (`profile-<row>.txt`, the stacks in `profile-<row>.folded`)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.paths import PY
from bench.progress import log


def start_py_spy(pid: int, workdir: Path, tag: str, duration: float, out_dir: Path):
    out = out_dir / f"profile-{tag}.txt"
    raw = workdir / f"profile-{tag}.folded"
    # --gil: only samples holding the GIL, i.e. where the process's CPU goes (threads
    # waiting on a socket, a lock or the database are left out).
    command = ["py-spy", "record", "--pid", str(pid), "--rate", "1000", "--format", "raw",
               "--output", str(raw), "--duration", str(int(duration) + 5), "--nonblocking",
               "--gil"]  # fmt: skip
    spy = Path(PY).parent / "py-spy"
    command[0] = str(spy) if spy.exists() else "py-spy"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process, raw, out


def finish_py_spy(py_spy) -> None:
    process, raw, out = py_spy
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    if raw.exists():
        out.write_text(fold_summary(raw.read_text()))
        shutil.copy(raw, out.with_suffix(".folded"))  # the stacks, for flame graphs
        log(f"profile: {out}")


def _package_of(frame: str) -> str:
    """`func (asyncio/events.py:80)` -> `asyncio` (py-spy shortens paths to the package)."""
    path = frame.rpartition("(")[2].rpartition(":")[0]
    top = path.split("/", 1)[0].removesuffix(".py") or frame
    return f"{top} (project)" if top in ("chat", "chatproject", "accounts", "bench") else top


def fold_summary(folded: str, top: int = 40) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():  # a line py-spy was still writing
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        if leaf.startswith(("thread (", "process ")):
            leaf = "(no Python frame)"
        own[leaf] = own.get(leaf, 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "# py-spy recorded no samples\n"
    by_package: dict[str, int] = {}
    for frame, count in own.items():
        by_package[_package_of(frame)] = by_package.get(_package_of(frame), 0) + count
    lines = [f"# py-spy samples holding the GIL: {total}", "", "## self, by package", ""]
    for package, count in sorted(by_package.items(), key=lambda kv: -kv[1]):
        lines.append(f"{100 * count / total:6.2f}%  {package}")
    lines += ["", "## self", ""]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:6.2f}%  {frame}")
    lines += ["", "## inclusive", ""]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:6.2f}%  {frame}")
    return "\n".join(lines) + "\n"
