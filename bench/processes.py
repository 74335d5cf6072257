"""The processes of a run: the upstream, the server under test (daphne or uvicorn serving
the project or the baseline relay), the load generator; each started at the benchmark's
niceness."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.database import REDIS_URL, database_url
from bench.paths import PY, ROOT

USERS = 4  # bearer tokens, used round-robin by the streams
NICE = 0  # set from --nice by the command line (bench.run, bench.server_floor)


def lower_niceness() -> None:
    """In the child before exec: run the benchmark's own processes ahead of other work.

    With `kernel.sched_autogroup_enabled` (the default on many distributions) a process's
    nice value only counts inside its session's autogroup, and autogroups share the CPU
    equally: so each child gets its own session, and that autogroup gets the nice value.
    """
    if not NICE:
        return
    os.setsid()
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
        fh.write(str(NICE))
    os.setpriority(os.PRIO_PROCESS, 0, NICE)


def renice(pids: list[int]) -> None:
    """Puts running processes that serve only the benchmark (the bench database's backends)
    at NICE, as lower_niceness puts the children it starts."""
    for pid in pids if NICE else ():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, NICE)


def terminate(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, and SIGKILL if the process is still there after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream:
    def __init__(self, workdir: Path) -> None:
        self.log = (workdir / "upstream.log").open("wb")
        self.process = subprocess.Popen(
            [PY, "-m", "bench.upstream_proc"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            preexec_fn=lower_niceness,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"upstream did not start; see {self.log.name}")
        info = json.loads(line)
        self.url, self.pid = info["url"], info["pid"]

    def stop(self) -> None:
        terminate(self.process, grace=10)


@dataclass(frozen=True)
class Variant:
    software: str  # daphne | uvicorn
    app: str  # project | baseline | compare (the project at another commit, `--compare`)
    root: Path = ROOT  # where the server's code is (a worktree of that commit for compare)
    label: str = ""  # the commit, for compare

    @property
    def name(self) -> str:
        return f"{self.app}{'@' + self.label if self.label else ''}/{self.software}"

    @property
    def serves_project(self) -> bool:
        return self.app != "baseline"


def server_command(variant: Variant, port: int) -> list[str]:
    target = "bench.baseline_relay:app"
    if variant.serves_project:
        target = "chatproject.asgi:application"
    if variant.software == "daphne":
        # -e instead of -b/-p only to raise Twisted's listen backlog (default 50). daphne
        # on uvloop through the project's launcher, the baseline included (as on uvicorn).
        endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=2048"
        return [PY, "-m", _launcher(variant, "serve_daphne", "daphne"), "-e", endpoint, target]
    # uvicorn's command line for every relay on uvicorn, the baseline included; a
    # --compare commit that had its own launcher (chatproject/serve.py) runs through it.
    launcher = _launcher(variant, "serve", "uvicorn")
    return [
        PY, "-m", launcher, target, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--loop", "uvloop", "--http", "httptools", "--backlog", "2048",
        "--timeout-graceful-shutdown", "3",
    ]  # fmt: skip


def _launcher(variant: Variant, module: str, plain: str) -> str:
    """The project's launcher `chatproject.<module>`, or the plain server for a --compare
    commit from before the launcher existed."""
    if (variant.root / "chatproject" / f"{module}.py").exists():
        return f"chatproject.{module}"
    return plain


def server_env(variant: Variant, upstream: Upstream, args) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "CHAT_"))}
    env.update(PYTHONUNBUFFERED="1", BENCH_UPSTREAM_URL=upstream.url, BENCH_MODEL="bench-model")
    if variant.app == "baseline":
        return env
    model = {
        "name": "bench", "base_url": upstream.url, "api_key": "bench", "model": "bench-model",
        "max_retries": 0, "timeout": 60,
    }  # fmt: skip
    env.update(
        DEBUG="0",
        SECRET_KEY=args.secret_key,
        CHAT_DEV_LOGIN="1",
        LLM_MODELS=json.dumps([model]),
        LLM_API_KEY="",
        DATABASE_URL=database_url(),
        REDIS_URL="" if args.no_redis else REDIS_URL,
        CHAT_REDIS_PREFIX=args.redis_prefix,
        CHAT_DRAIN_SECONDS="2",
        SECURE_SSL_REDIRECT="0",  # the load speaks plain http
        # Production's metrics: every process of the host writes to one directory.
        PROMETHEUS_MULTIPROC_DIR=args.metrics_dir,
        # Every question is still counted (the check's cost is paid), never refused: the
        # load asks far more at once than a user may.
        **{f"CHAT_LIMIT_{name}": "0" for name in _LIMITS},
    )
    return env


_LIMITS = (
    "CONCURRENT_STREAMS", "QUESTIONS_PER_MINUTE", "QUESTIONS_PER_DAY", "ANSWER_TOKENS_PER_DAY",
    "LOGINS_PER_IP_PER_MINUTE", "TICKET_EXCHANGES_PER_IP_PER_MINUTE",
)  # fmt: skip


class Server:
    def __init__(self, variant: Variant, upstream: Upstream, args, workdir: Path, tag: str):
        self.variant = variant
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = server_command(variant, self.port)
        self.log_path = workdir / f"server-{tag}.log"
        self.process = subprocess.Popen(
            self.command,
            cwd=variant.root,  # `python -m` imports the code from there
            env=server_env(variant, upstream, args),
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            preexec_fn=lower_niceness,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{variant.name} exited at start; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{variant.name} did not start; see {self.log_path}")

    def stop(self) -> None:
        terminate(self.process, grace=15)


def login(server: Server) -> list[str]:
    tokens = []
    for i in range(USERS):
        response = httpx.post(
            f"{server.url}/api/auth/dev/login", json={"openid": f"bench_user_{i}"}, timeout=10
        )
        response.raise_for_status()
        tokens.append(response.json()["token"])
    return tokens


def run_loadgen(config: dict, workdir: Path, on_ready=None, timeout: float = 120) -> dict:
    path = workdir / f"loadgen-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [PY, "-m", "bench.loadgen", str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(workdir / "loadgen.log").open("ab"),
        text=True,
        preexec_fn=lower_niceness,
    )
    try:
        if config.get("handshake"):
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("load generator did not start; see loadgen.log")
            if on_ready:
                on_ready(process.pid)
            process.stdin.write("go\n")
            process.stdin.flush()
        out, _ = process.communicate(timeout=timeout)
    except BaseException:
        process.kill()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode}); see loadgen.log")
    return json.loads(out.strip().splitlines()[-1])


def database_migrate(args, workdir: Path) -> None:
    """`manage.py migrate` on the bench database, with the project server's environment."""
    migrate_env = server_env(Variant("daphne", "project"), _FakeUpstream(), args)
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=migrate_env, check=True,
        stdout=(workdir / "migrate.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


class _FakeUpstream:
    """Stands in for the upstream where only its URL is needed (migrations)."""

    url = "http://127.0.0.1:9/v1"
    pid = 0
