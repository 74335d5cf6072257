"""What a report says about where it ran: the machine, package and service versions, the
commit, and a fingerprint of the served code."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path

from bench.database import PG_ADMIN_URL, REDIS_URL
from bench.paths import ROOT


def code_fingerprint(root: Path = ROOT) -> str:
    """HEAD plus a hash of the served code as it is on disk now (the tree may be edited
    between rows: each row's server imports the code when it starts)."""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("chat", "chatproject", "accounts"):
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.read_bytes())
    head = "?"
    with contextlib.suppress(Exception):
        head = subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True
        ).strip()
    return f"{head}:{digest.hexdigest()[:10]}"


def machine_info() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    versions = {}
    for name in ("django", "daphne", "twisted", "uvicorn", "uvloop", "httptools", "openai",
                 "httpx2", "httpx", "aiohttp", "psycopg", "redis", "orjson"):  # fmt: skip
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[name] = version(name)
    git = {}
    with contextlib.suppress(Exception):
        git["commit"] = subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True
        ).strip()
        dirty = subprocess.check_output(["git", "status", "--porcelain"], cwd=ROOT, text=True)
        git["dirty"] = bool(dirty.strip())
    services = {}
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN_URL) as conn:
            services["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    with contextlib.suppress(Exception):
        import redis

        services["redis"] = redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "versions": versions,
        "services": services,
        "git": git,
    }
