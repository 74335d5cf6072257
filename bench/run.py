"""Relay cost and capacity benchmark (issue #6): the project's stream endpoint against the
usual SDK relay, same machine, same run.

    .venv/bin/python -m bench.run                      # full suite, ~16 minutes on 2 cores
    .venv/bin/python -m bench.run --quick              # N = 1 and N = 100 only
    .venv/bin/python -m bench.run --scenarios n1,n500 --servers daphne,baseline
    .venv/bin/python -m bench.run --capacity           # also search N for each server

Writes bench/results/latest.md (tables, machine, date, command) and latest.json (every
figure). Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and, unless
--no-redis, Redis on 127.0.0.1:6379. Processes, all on 127.0.0.1, each its own:

- the upstream (bench/upstream_proc.py), one for the whole run;
- the server under test, started fresh for every (variant, scenario): one daphne or
  uvicorn process serving either the project (chatproject.asgi) or the baseline relay
  (bench/baseline_relay.py), so CPU, RSS and its high-water mark belong to that scenario;
- the load generator (bench/loadgen.py), fresh for every scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.database import (
    DB_NAME,
    REDIS_URL,
    database_create,
    database_drop,
    database_url,
    db_writes,
    wait_for_no_backends,
    writes_delta,
)
from bench.machine import code_fingerprint, machine_info
from bench.paths import PY, RESULTS, ROOT
from bench.procfs import (
    CLK_TCK,
    cpu_s_between,
    group_ticks,
    machine_ticks,
    pids_matching,
    proc_cpu_ns,
    proc_status_kb,
    proc_sys_ticks,
    proc_ticks,
    run_delay_s,
    ticks_delta,
)
from bench.profiling import finish_py_spy, start_py_spy
from bench.progress import log
from bench.scenarios import (
    CAPACITY_RESOLUTION,
    CAPACITY_STEPS,
    DEFAULT_SCENARIOS,
    QUICK_SCENARIOS,
    SCENARIOS,
    Scenario,
    steady,
)

USERS = 4  # bearer tokens, used round-robin by the streams

# Targets of issue #6.
LATENCY_P99_LIMIT_MS = 150.0
# Added to the capacity test (0 failed, added latency p99 <= 150 ms): an
# overloaded server otherwise "passes" by admitting new streams slowly, i.e. by holding
# far fewer than N answers at once while the admitted ones stream on time.
HELD_FRACTION = 0.9  # at least this share of N open at once
TTFT_ADDED_P99_LIMIT_MS = 1000.0


# --- Processes -------------------------------------------------------------------------


NICE = 0  # set from --nice in main()


def _lower_niceness() -> None:
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
            preexec_fn=_lower_niceness,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"upstream did not start; see {self.log.name}")
        info = json.loads(line)
        self.url, self.pid = info["url"], info["pid"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


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
    # The project's production launcher (uvicorn, quieter main loop) for every relay on
    # uvicorn, the baseline included: the same server software.
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
    )
    return env


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
            preexec_fn=_lower_niceness,
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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


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
        preexec_fn=_lower_niceness,
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


# --- One measurement -------------------------------------------------------------------


def measure(
    variant: Variant,
    scenario: Scenario,
    n: int,
    ctx: dict,
    *,
    profile: bool = False,
    pass_number: int = 1,
) -> dict:
    args, upstream, workdir = ctx["args"], ctx["upstream"], ctx["workdir"]
    tag = f"{variant.app}-{variant.software}-{scenario.name}-{n}-p{pass_number}"
    # Table counters are read with no server connected: a backend publishes its counters
    # when it exits (idle ones only now and then), so these two readings are exact.
    writes_before = db_writes() if variant.serves_project else {}
    code = code_fingerprint(variant.root)
    server = Server(variant, upstream, args, workdir, tag)
    py_spy = None
    try:
        tokens: list[str] = []
        if variant.serves_project:
            tokens = ctx["tokens"]
        base = {
            "server_url": server.url, "upstream_url": upstream.url, "tokens": tokens,
            "read_timeout": 30,
        }  # fmt: skip
        # Warm-up: imports, connection pools, first queries; not measured.
        warm = {**base, "n": 8, "rounds": 2, "stagger": 0.0, "direct": 1, "rate": 200,
                "count": 10, "deadline": 30}  # fmt: skip
        warm_result = run_loadgen(warm, workdir)
        if warm_result["relay"]["failed"]:
            raise RuntimeError(f"warm-up failed on {variant.name}: {warm_result['relay']}")
        idle_ticks = proc_ticks(server.pid)
        time.sleep(1.0)
        idle_cores = (proc_ticks(server.pid) - idle_ticks) / CLK_TCK / 1.0
        idle_rss = proc_status_kb(server.pid, "VmRSS")
        stagger = scenario.stagger
        config = {
            **base, "n": n, "rounds": scenario.rounds, "stagger": stagger,
            "direct": scenario.direct if n == scenario.n else min(50, max(2, n // 10)),
            "rate": scenario.rate, "count": scenario.count, "server_pid": server.pid,
            "deadline": stagger + scenario.rounds * scenario.answer_seconds + 30,
            "handshake": True,
        }  # fmt: skip
        readings: dict = {}

        def on_ready(loadgen_pid: int) -> None:
            readings["pg_pids"] = pids_matching("postgres:", f" {DB_NAME} ")
            for pid in readings["pg_pids"] if NICE else ():
                # The bench database's backends serve only this server: same footing.
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, pid, NICE)
            readings["redis_pids"] = pids_matching("redis-server")
            readings["before"] = {
                "server_wait": run_delay_s(server.pid),
                "server": proc_ticks(server.pid),
                "server_ns": proc_cpu_ns(server.pid),
                "server_sys": proc_sys_ticks(server.pid),
                "upstream": proc_ticks(upstream.pid),
                "loadgen": proc_ticks(loadgen_pid),
                "pg": group_ticks(readings["pg_pids"]),
                "redis": group_ticks(readings["redis_pids"]),
                "machine": machine_ticks(),
                "wall": time.monotonic(),
            }
            readings["loadgen_pid"] = loadgen_pid

        if profile:
            py_spy = start_py_spy(server.pid, workdir, tag, config["deadline"], Path(args.out))
        result = run_loadgen(config, workdir, on_ready=on_ready, timeout=config["deadline"] + 60)
        after = {
            "server_wait": run_delay_s(server.pid),
            "server": proc_ticks(server.pid),
            "server_ns": proc_cpu_ns(server.pid),
            "server_sys": proc_sys_ticks(server.pid),
            "upstream": proc_ticks(upstream.pid),
            "pg": group_ticks(pids_matching("postgres:", f" {DB_NAME} ")),
            "redis": group_ticks(readings["redis_pids"]),
            "machine": machine_ticks(),
            "wall": time.monotonic(),
        }
        peak_rss = proc_status_kb(server.pid, "VmHWM")
        if py_spy is not None:
            finish_py_spy(py_spy)
    finally:
        server.stop()
    writes = {}
    if variant.serves_project:
        wait_for_no_backends()
        writes = writes_delta(writes_before, db_writes())
    run = summarize(variant, scenario, n, server, result, readings, after, idle_rss,
                    peak_rss, writes)  # fmt: skip
    # Writes cover the server's whole life: warm-up answers count as answers too.
    warm_answers = warm_result["relay"]["streams"]
    all_answers = run["answers"] + warm_answers
    total = sum(sum(v) for v in writes.values())
    run["warmup_answers"] = warm_answers
    run["db_writes_per_answer"] = round(total / all_answers, 3) if writes else 0.0
    run["server_idle_cores"] = round(idle_cores, 3)
    run["code"] = code
    run["pass"], run["passes"] = pass_number, scenario.passes
    return run


def summarize(variant, scenario, n, server, result, readings, after, idle_rss, peak_rss, writes):
    before = readings["before"]
    wall = after["wall"] - before["wall"]
    tick = 1.0 / CLK_TCK
    server_cpu = cpu_s_between(before.get("server_ns"), after.get("server_ns"))
    if server_cpu is None:
        server_cpu = (after["server"] - before["server"]) * tick
    server_sys = (after["server_sys"] - before["server_sys"]) * tick
    upstream_cpu = (after["upstream"] - before["upstream"]) * tick
    pg_cpu = ticks_delta(before["pg"], after["pg"]) * tick
    redis_cpu = ticks_delta(before["redis"], after["redis"]) * tick
    busy = (after["machine"][0] - before["machine"][0]) * tick
    loadgen_cpu = result["loadgen_cpu_s"]
    waited = None
    if before["server_wait"] is not None and after["server_wait"] is not None:
        waited = after["server_wait"] - before["server_wait"]
    others = busy - server_cpu - upstream_cpu - pg_cpu - redis_cpu - loadgen_cpu
    relay, direct = result["relay"], result["direct"]
    tokens = relay["tokens"]
    answers = relay["streams"] - relay["errors"].get("not_started", 0)
    total_writes = sum(sum(v) for v in writes.values())

    def diff(a, b):
        return None if a is None or b is None else round(a - b, 3)

    max_open = result["max_open"]
    rss_at_open = result["rss_kb_at_max_open"]
    per_stream = None
    if max_open and rss_at_open and idle_rss:
        per_stream = round((rss_at_open - idle_rss) / max_open, 2)
    return {
        "variant": variant.name,
        "app": variant.app,
        "software": variant.software,
        "scenario": scenario.name,
        "n": n,
        "rate": scenario.rate,
        "tokens_per_answer": scenario.count,
        "rounds": scenario.rounds,
        "stagger_s": scenario.stagger,
        "command": shlex.join(server.command),
        "streams_ok": relay["ok"],
        "streams_failed": relay["failed"],
        "errors": relay["errors"],
        "ttft_ms": relay["ttft_ms"],
        "ttft_direct_ms": direct["ttft_ms"],
        "ttft_added_p50_ms": diff(relay["ttft_ms"]["p50"], direct["ttft_ms"]["p50"]),
        "latency_ms": relay["token_latency_ms"],
        "latency_direct_ms": direct["token_latency_ms"],
        "latency_by_position_ms": relay.get("token_latency_ms_by_position"),
        "late_over_100ms_at_s": relay.get("late_over_100ms_at_s"),
        "latency_added_p50_ms": diff(
            relay["token_latency_ms"]["p50"], direct["token_latency_ms"]["p50"]
        ),
        "latency_added_p99_ms": diff(
            relay["token_latency_ms"]["p99"], direct["token_latency_ms"]["p99"]
        ),
        "direct_streams_ok": direct["ok"],
        "direct_streams_failed": direct["failed"],
        "tokens": tokens,
        "tokens_per_frame": relay["tokens_per_frame"],
        "upstream_tokens_per_s": relay["upstream_tokens_per_s"],
        "wall_s": round(wall, 3),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_cores": round(server_cpu / wall, 3) if wall else None,
        "server_peak_cores_1s": result["server_peak_cores_1s"],
        "cpu_s_per_1k_tokens": round(server_cpu / (tokens / 1000), 4) if tokens else None,
        "server_sys_share": round(server_sys / server_cpu, 3) if server_cpu else None,
        "idle_rss_mb": round(idle_rss / 1024, 1) if idle_rss else None,
        "peak_rss_mb": round(peak_rss / 1024, 1) if peak_rss else None,
        "rss_at_max_open_mb": round(rss_at_open / 1024, 1) if rss_at_open else None,
        "max_open_streams": max_open,
        "rss_kb_per_open_stream": per_stream,
        "answers": answers,
        "db_writes": writes,
        "db_writes_per_answer": round(total_writes / answers, 3) if answers and writes else 0.0,
        "harness": {
            "loadgen_cpu_s": loadgen_cpu,
            "loadgen_cpu_cores": round(loadgen_cpu / wall, 3) if wall else None,
            "loadgen_loop_lag_ms": result["loop_lag_ms"],
            "upstream_cpu_s": round(upstream_cpu, 3),
            "upstream_cpu_cores": round(upstream_cpu / wall, 3) if wall else None,
            "postgres_cpu_s": round(pg_cpu, 3),
            "redis_cpu_s": round(redis_cpu, 3),
            "machine_busy_cores": round(busy / wall, 3) if wall else None,
            "server_cpu_wait_per_s": (
                round(waited / wall, 3) if wall and waited is not None else None
            ),
            "other_processes_cores": round(others / wall, 3) if wall else None,
        },
        "rss_samples": result["rss_samples"],
    }


# --- Report ----------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def passes(run: dict) -> bool:
    """The capacity test for one run at 30 tokens/s."""
    added = run["latency_added_p99_ms"]
    ttft, ttft_direct = run["ttft_ms"]["p99"], run["ttft_direct_ms"]["p99"]
    return (
        run["streams_failed"] == 0
        and added is not None
        and added <= LATENCY_P99_LIMIT_MS
        and run["max_open_streams"] >= HELD_FRACTION * run["n"]
        and ttft is not None
        and ttft_direct is not None
        and ttft - ttft_direct <= TTFT_ADDED_P99_LIMIT_MS
    )


def search_capacity(variant: Variant, runs: list[dict], attempt) -> None:
    """Steady 30 tokens/s runs at growing N until one fails the capacity test, then
    halving the gap between the last N that passed and the first that failed down to
    about an eighth of the former (at least 25), so that a capacity ratio is not an
    artefact of the steps (150 vs 400 reads 2.7x whether the truth is 2.4x or 3.3x).

    A failed run is repeated once and judged by the repeat (a moment of interference
    from other work on the machine), the scenarios' own runs (n500, n1000) included.
    The same rules for every relay."""

    def judged(n: int) -> bool:
        verdict = verdict_at(runs, variant.name, n)
        scenario = replace(steady(n), name=f"cap{n}")
        if verdict is None:
            log(f"{variant.name} capacity N={n}")
            attempt(variant, scenario, n)
            verdict = verdict_at(runs, variant.name, n)
        if verdict is False and not _repeated(runs, variant.name, n):
            log(f"{variant.name} capacity N={n}: repeat")
            attempt(variant, replace(scenario, name=f"cap{n}{_REPEAT_SUFFIX}"), n)
            verdict = verdict_at(runs, variant.name, n)
        return bool(verdict)

    passed, failed = 0, None
    for n in CAPACITY_STEPS:
        if not judged(n):
            failed = n
            break
        passed = n
    while failed is not None and failed - passed > max(CAPACITY_RESOLUTION, passed // 8):
        middle = (passed + failed) // 2 // CAPACITY_RESOLUTION * CAPACITY_RESOLUTION
        if judged(middle):
            passed = middle
        else:
            failed = middle


_REPEAT_SUFFIX = "-again"  # a repeated capacity step: cap<N>-again


def _steady_runs(runs: list[dict], variant: str, n: int | None = None) -> list[dict]:
    """`variant`'s runs at 30 tokens/s (at N answers, if given)."""
    return [
        r for r in runs
        if r["variant"] == variant and r["rate"] == 30.0 and n in (None, r["n"])
    ]  # fmt: skip


def _repeated(runs: list[dict], variant: str, n: int) -> bool:
    return any(r["scenario"].endswith(_REPEAT_SUFFIX) for r in _steady_runs(runs, variant, n))


def verdict_at(runs: list[dict], variant: str, n: int) -> bool | None:
    """Whether `variant` held N answers at 30 tokens/s: the repeat's result if the step
    was repeated, else whether every run at N passed (all passes of n1, n100); None if
    N was not run."""
    steady = _steady_runs(runs, variant, n)
    if not steady:
        return None
    repeats = [r for r in steady if r["scenario"].endswith(_REPEAT_SUFFIX)]
    return all(passes(r) for r in (repeats[-1:] or steady))


def capacity_of(runs: list[dict], variant: str) -> tuple[int, bool]:
    """Largest N at 30 tokens/s that passed, and whether a larger N was tried and failed."""
    tried = sorted({r["n"] for r in _steady_runs(runs, variant)})
    best = 0
    for n in tried:  # the largest N below which all passed
        if not verdict_at(runs, variant, n):
            return best, True
        best = n
    return best, False


def _pair_key(run: dict) -> tuple:
    """Which baseline row a project row is compared with: same server, scenario, pass."""
    return run["software"], run["scenario"], run["n"], run.get("pass", 1)


def _pass_label(run: dict) -> str:
    return f", pass {run['pass']}/{run['passes']}" if run.get("passes", 1) > 1 else ""


def pooled_cpu_ratio(
    runs: list[dict], scenario: str, n: int, of: str = "project", to: str = "baseline"
) -> tuple[float, list[float]] | None:
    """One relay's CPU per token over another's (apps `of` and `to`), pooled over the
    passes both completed (of one server software), and each pass's own ratio."""
    rows: dict[str, dict[int, dict]] = {of: {}, to: {}}
    for r in runs:
        if (
            r["app"] in rows and r["scenario"] == scenario and r["n"] == n
            and r["tokens"] and r["server_cpu_s"]
        ):  # fmt: skip
            rows[r["app"]][r.get("pass", 1)] = r
    both = [p for p in rows[of] if p in rows[to]]
    if not both:
        return None

    def per_token(app: str) -> float:
        picked = [rows[app][p] for p in both]
        return sum(r["server_cpu_s"] for r in picked) / sum(r["tokens"] for r in picked)

    each = [rows[of][p]["cpu_s_per_1k_tokens"] / rows[to][p]["cpu_s_per_1k_tokens"] for p in both]
    return per_token(of) / per_token(to), each


def report(runs: list[dict], meta: dict) -> str:
    m = meta["machine"]
    lines = [
        "# Relay benchmark: latest results",
        "",
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}; load average at start "
        f"{' '.join(m['loadavg_at_start'])}",
        f"- Services: PostgreSQL {m['services'].get('postgresql', '?')}, Redis "
        f"{m['services'].get('redis', '?')} ({'used' if meta['redis'] else 'not used'} by "
        "the project server)",
        f"- Code: {m['git'].get('commit', '?')}"
        f"{' + uncommitted changes' if m['git'].get('dirty') else ''}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- Duration: {meta['duration_s']:.0f} s; server, upstream and load generator at "
        f"nice {meta['nice']}",
        "",
        "One server process per run, restarted for every row. `project` is the real",
        "`POST /api/chat/stream` (bearer auth, question saved, upstream through",
        "`chat/providers.py`, answer saved); `baseline` is `bench/baseline_relay.py`, a bare",
        "ASGI app relaying `openai.AsyncOpenAI().chat.completions.create(stream=True)` chunks",
        "as SSE with no auth and no database, served by the same server software.",
        "",
        "## Results",
        "",
        "| scenario | relay / server | streams ok / failed / most open at once | TTFT p50 / p99 ms "
        "(direct p50) | added TTFT p50 ms | token latency p50 / p99 ms (direct) "
        "| added p50 / p99 ms | server CPU s / 1k tokens | vs baseline | server CPU cores avg / "
        "busiest 1 s "
        "| peak RSS MB | RSS KB / open stream | DB writes / answer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    baseline_cpu = {_pair_key(r): r["cpu_s_per_1k_tokens"] for r in runs if r["app"] == "baseline"}
    for r in runs:
        ref = baseline_cpu.get(_pair_key(r))
        ratio = "–"
        if r["app"] != "baseline" and ref and r["cpu_s_per_1k_tokens"]:
            ratio = f"{r['cpu_s_per_1k_tokens'] / ref:.2f}×"
        scen = f"{r['scenario']} (N={r['n']}, {r['rate']:.0f} tok/s){_pass_label(r)}"
        t, td, lat, ld = r["ttft_ms"], r["ttft_direct_ms"], r["latency_ms"], r["latency_direct_ms"]
        failed = r["streams_failed"]
        failed_text = f"**{failed}**" if failed else "0"
        lines.append(
            f"| {scen} | {r['variant']} | {r['streams_ok']} / {failed_text} / "
            f"{r['max_open_streams']} "
            f"| {fmt(t['p50'])} / {fmt(t['p99'])} ({fmt(td['p50'])}) "
            f"| {fmt(r['ttft_added_p50_ms'])} "
            f"| {fmt(lat['p50'])} / {fmt(lat['p99'])} ({fmt(ld['p50'])} / {fmt(ld['p99'])}) "
            f"| {fmt(r['latency_added_p50_ms'])} / {fmt(r['latency_added_p99_ms'])} "
            f"| {fmt(r['cpu_s_per_1k_tokens'], 3)} | {ratio} | {fmt(r['server_cpu_cores'], 2)} / "
            f"{fmt(r['server_peak_cores_1s'], 2)} "
            f"| {fmt(r['peak_rss_mb'])} | {fmt(r['rss_kb_per_open_stream'])} "
            f"| {fmt(r['db_writes_per_answer'], 2) if r['app'] != 'baseline' else '–'} |"
        )
    errors = [r for r in runs if r["errors"]]
    if errors:
        lines += ["", "Failed streams by cause: " + "; ".join(
            f"{r['variant']} {r['scenario']} N={r['n']}: "
            + ", ".join(f"{k} × {v}" for k, v in r["errors"].items())
            for r in errors
        )]  # fmt: skip
    codes = sorted({r["code"] for r in runs if r["app"] == "project" and r.get("code")})
    if len(codes) > 1:
        lines += ["", f"**Warning:** the project code changed during the run ({', '.join(codes)})"
                  "; rows are not all of the same code."]  # fmt: skip
    elif codes:
        lines += ["", f"Project code (HEAD:hash of chat/, chatproject/, accounts/): `{codes[0]}`."]
    if meta.get("problems"):
        lines += ["", "Rows that could not be measured: " + "; ".join(meta["problems"])]
    lines += targets_section(runs)
    lines += compare_section(runs, meta.get("compare"))
    lines += [
        "",
        "## Harness and machine during each run",
        "",
        "CPU in cores (CPU seconds / wall seconds). `others` is the machine's busy time minus",
        "every process of the benchmark (server, upstream, load generator, the bench",
        "database's PostgreSQL backends, Redis): other work on the machine. `server kernel",
        "share`: the part of the server's CPU spent in the kernel (socket reads and writes,",
        "mostly). The last column is",
        "the time the server's event-loop thread sat runnable without a CPU (schedstat run",
        "delay) per second: above ~0.05 the server was held back by other processes and its",
        "latency and TTFT are partly the machine's. Figures from a run with a large `others`",
        "or a load generator near 1 core are suspect.",
        "",
        "| scenario | relay / server | wall s | tokens | tokens / event | upstream pace tok/s "
        "p50 / p1 | server (idle) | server kernel share | upstream "
        "| load gen | loop lag p99 ms | PostgreSQL | Redis | others | machine busy "
        "| server waited for a CPU, s/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        h = r["harness"]
        wall = r["wall_s"] or 1
        pace = r.get("upstream_tokens_per_s") or {}
        lines.append(
            f"| {r['scenario']} (N={r['n']}){_pass_label(r)} | {r['variant']} | {fmt(r['wall_s'])} "
            f"| {r['tokens']} | {fmt(r['tokens_per_frame'], 2)} "
            f"| {fmt(pace.get('p50'))} / {fmt(pace.get('p1'))} | {fmt(r['server_cpu_cores'], 2)} "
            f"({fmt(r.get('server_idle_cores'), 2)}) | {fmt(r.get('server_sys_share'), 2)} "
            f"| {fmt(h['upstream_cpu_cores'], 2)} | {fmt(h['loadgen_cpu_cores'], 2)} "
            f"| {fmt(h['loadgen_loop_lag_ms']['p99'])} | {fmt(h['postgres_cpu_s'] / wall, 2)} "
            f"| {fmt(h['redis_cpu_s'] / wall, 2)} | {fmt(h['other_processes_cores'], 2)} "
            f"| {fmt(h['machine_busy_cores'], 2)} | {fmt(h.get('server_cpu_wait_per_s'), 2)} |"
        )
    lines += ["", "## Method", "", *METHOD_NOTES, "", "## Reproduce", "", *REPRODUCE]
    return "\n".join(lines) + "\n"


def targets_section(runs: list[dict]) -> list[str]:
    lines = [
        "",
        "## Targets of issue #6",
        "",
        "| server | CPU / 1k tokens vs baseline (per scenario) | capacity at 30 tok/s: project "
        "vs baseline | TTFT overhead at N=1 (p50) | RSS / open stream at N=1000 "
        "| DB writes / answer |",
        "|---|---|---|---|---|---|",
    ]
    for software in sorted({r["software"] for r in runs}):
        mine = [r for r in runs if r["software"] == software]
        project = [r for r in mine if r["app"] == "project"]
        if not project:
            continue
        has_baseline = any(r["app"] == "baseline" for r in mine)
        ratios = []
        for scenario, n in dict.fromkeys((r["scenario"], r["n"]) for r in project):
            if SCENARIOS.get(scenario) and SCENARIOS[scenario].memory_only:
                continue
            found = pooled_cpu_ratio(mine, scenario, n)
            if found is None:
                continue
            pooled, each = found
            mark = "✅" if pooled <= 1 / 3 else "❌"
            detail = f" (passes {', '.join(f'{x:.2f}' for x in each)})" if len(each) > 1 else ""
            ratios.append(f"{scenario}: {pooled:.3f}×{detail} {mark}")
        cap_p, capped_p = capacity_of(runs, f"project/{software}")
        cap_b, capped_b = capacity_of(runs, f"baseline/{software}")
        if has_baseline:
            ok = cap_p >= 3 * cap_b and cap_p > 0
            cap = (
                f"{cap_p}{'' if capped_p else '+'} vs {cap_b}{'' if capped_b else '+'} "
                f"{'✅' if ok else '❌'} (target ≥ 3×)"
            )
        else:
            cap = f"{cap_p}{'' if capped_p else '+'} (no baseline run)"
        n1_added = [
            r["ttft_added_p50_ms"]
            for r in project
            if r["scenario"] == "n1" and r["ttft_added_p50_ms"] is not None
        ]
        ttft = "–"
        if n1_added:
            added = statistics.median(n1_added)  # of the passes
            mark = "✅" if added <= 20 else "❌"
            ttft = f"{added:.1f} ms {mark} (≤ 20)"
        rss_parts = []
        for r in project:
            if r["n"] == 1000 and r["rss_kb_per_open_stream"] is not None:
                mark = "✅" if r["rss_kb_per_open_stream"] <= 64 else "❌"
                rss_parts.append(
                    f"{r['scenario']}: {r['rss_kb_per_open_stream']:.0f} KB {mark} "
                    f"({r['max_open_streams']} open)"
                )
        rss = "; ".join(rss_parts) + " (≤ 64)" if rss_parts else "–"
        writes = sorted({round(r["db_writes_per_answer"], 1) for r in project})
        lines.append(
            f"| {software} | {'; '.join(ratios) or '–'} (target ≤ 0.33×) | {cap} | {ttft} "
            f"| {rss} | {', '.join(map(str, writes))} |"
        )
    lines += [
        "",
        "Capacity: the largest N such that every steady 30 tokens/s run up to it had 0 failed",
        f"streams and added token latency p99 ≤ {LATENCY_P99_LIMIT_MS:.0f} ms (issue #6), and also",
        f"held ≥ {HELD_FRACTION:.0%} of N streams open at once with added TTFT p99 ≤ "
        f"{TTFT_ADDED_P99_LIMIT_MS:.0f} ms (added here: an overloaded server otherwise passes by",
        f"admitting new streams slowly). The steps are {', '.join(map(str, CAPACITY_STEPS))},",
        "then the gap between the last N that passed and the first that failed is halved",
        f"down to about an eighth of the former (at least {CAPACITY_RESOLUTION}).",
        "A failed run (a scenario's own n500, n1000 included) is repeated once and judged",
        "by the repeat; `+`: no larger N failed, so the real figure may be higher.",
    ]
    return lines


def compare_section(runs: list[dict], ref: str | None) -> list[str]:
    """`--compare`: the project's CPU per token against the same project at another
    commit, in alternating passes of the same run (a change's effect, without the
    run-to-run drift that two separate runs carry)."""
    if not ref:
        return []
    lines = [
        "",
        f"## This code against `{ref}`",
        "",
        "CPU per 1k tokens of the project as it is, over the project at that commit: same",
        "server software, passes alternating, pooled (below 1: this code is leaner).",
        "",
        "| server | scenario | ratio (each pass) |",
        "|---|---|---|",
    ]
    for software in sorted({r["software"] for r in runs}):
        mine = [r for r in runs if r["software"] == software]
        for scenario, n in dict.fromkeys((r["scenario"], r["n"]) for r in mine):
            found = pooled_cpu_ratio(mine, scenario, n, of="project", to="compare")
            if found is not None:
                pooled, each = found
                lines.append(
                    f"| {software} | {scenario} | {pooled:.3f} "
                    f"({', '.join(f'{x:.3f}' for x in each)}) |"
                )
    return lines


METHOD_NOTES = [
    "- Upstream: `bench/upstream_proc.py`, its own process, OpenAI-compatible SSE. Token i",
    "  of an answer is written at request arrival + (i + 1) / rate on an absolute schedule;",
    "  each token is a short CJK/ASCII piece plus `[[emission time in µs]]` (about 20",
    "  bytes longer than a real token; the same for every relay).",
    "- Load generator: `bench/loadgen.py`, its own process (uvloop + aiohttp, no connection",
    "  limit, a fresh connection per stream as separate clients would open; reusing",
    "  keep-alive connections made uvicorn reset some under overload, see below). N",
    "  virtual users each ask `rounds` questions back to back; first starts are",
    "  spread over one answer's duration (2 s) so N answers are open at once in the steady",
    "  scenarios, and all at once in `burst` and N=1. Alongside, a few users read the",
    "  upstream directly (same client, same moment): the reference for TTFT and latency.",
    "- TTFT: request start to the first frame carrying a token. Token latency: receive time",
    "  of the read completing the frame carrying the token minus the token's emission time",
    "  (one event carrying several tokens gives each the same receive time). `added` =",
    "  relay percentile minus direct percentile (a difference of percentiles, not a",
    "  percentile of differences).",
    "- A stream is ok when it answered 200, delivered all tokens, ended with a `done` event",
    "  of status done, and carried no error event; anything else (HTTP error, reset, read",
    "  timeout 30 s, deadline) is failed.",
    "- Server CPU: CPU time of the server process's threads (DB threads included; each",
    "  thread's /proc schedstat, in nanoseconds; utime + stime in clock ticks if a thread",
    "  ended meanwhile) between the load generator's start signal and its exit, divided by the",
    "  tokens delivered through the relay. PostgreSQL and Redis CPU are not in it (see",
    "  the harness table). A server near 1.0 core is saturated: its latency is then queueing.",
    "- Memory: peak RSS is VmHWM (start-up and warm-up included). RSS per open stream =",
    "  (VmRSS sampled every 100 ms while the most streams were open − VmRSS after warm-up)",
    "  / streams open.",
    "- DB writes: `pg_stat_user_tables` n_tup_ins + n_tup_upd + n_tup_del summed over the",
    "  bench database, read after warm-up (+1.5 s for backends to publish) and after the",
    "  server stopped (backends flush on exit), per answer started; heartbeat checkpoints",
    "  (every 5 s) included.",
    "- Every row runs 8 × 2 warm-up answers first (not measured; their DB writes are",
    "  counted, with the answers, in writes per answer).",
    "- `upstream pace`: tokens per second per answer the upstream really emitted (from the",
    "  markers); below 30 the harness itself could not keep up and the scenario offered",
    "  less load than its name says.",
    "- Shared machines: server, upstream and load generator each run in their own session",
    "  with autogroup nice -10 (`--nice`), so other work disturbs less; it still shows in",
    "  `others` and in the server's CPU wait.",
]

REPRODUCE = [
    "```sh",
    ".venv/bin/pip install -e '.[dev]'       # uvicorn, uvloop, httptools, aiohttp",
    ".venv/bin/python -m bench.run           # full suite, about 16 minutes on 2 cores",
    ".venv/bin/python -m bench.run --quick   # N = 1 and N = 100",
    "```",
    "",
    "Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust; the run creates and drops",
    f"database `{DB_NAME}`) and Redis on 127.0.0.1:6379 (`--no-redis` to run without).",
    "Run it on an otherwise idle machine: see `others` above.",
]


# --- Main ------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--scenarios", default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (or any nK: K answers at 30 tok/s)",
    )  # fmt: skip
    parser.add_argument(
        "--servers", default="daphne,uvicorn,baseline",
        help="server software (daphne, uvicorn) and `baseline` to also run the baseline relay",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="N = 1 and N = 100 only")
    parser.add_argument(
        "--capacity", action="store_true",
        help=f"also search N in {CAPACITY_STEPS} (30 tok/s) until a run fails the targets",
    )  # fmt: skip
    parser.add_argument("--no-redis", action="store_true", help="project server without Redis")
    parser.add_argument(
        "--profile", action="store_true",
        help="attach py-spy to project servers (results are then not written to latest.*)",
    )  # fmt: skip
    parser.add_argument(
        "--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
        help="niceness of the server, upstream and load generator (default -10 as root, so "
        "other work on a shared machine disturbs less; 0 to disable)",
    )  # fmt: skip
    parser.add_argument("--keep-db", action="store_true", help=f"do not drop `{DB_NAME}`")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="answers per virtual user in every scenario (less noise in A/B comparisons)",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=0,
        help="alternating passes per scenario, pooled for the CPU ratio (default: 3 for n1 "
        "and n100, else 1)",
    )
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="also serve the project at this commit (a temporary git worktree), alternating "
        "with the code as it is: the report gains a this-code-vs-REF table",
    )
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument(
        "--render", action="store_true",
        help="only rewrite latest.md from latest.json (after a change to the report)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv=None) -> int:
    global NICE
    args = parse_args(argv)
    if args.render:
        data = json.loads((Path(args.out) / "latest.json").read_text())
        (Path(args.out) / "latest.md").write_text(report(data["runs"], data["meta"]))
        log(f"rewrote {Path(args.out) / 'latest.md'} from latest.json")
        return 0
    NICE = args.nice
    started = time.monotonic()
    command = "python -m bench.run" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    names = QUICK_SCENARIOS if args.quick else [s for s in args.scenarios.split(",") if s]
    for name in names:  # any other nK: K steady answers at 30 tokens/s (nKxT: T tokens each)
        n, _, count = name[1:].partition("x")
        if name not in SCENARIOS and name[:1] == "n" and n.isdigit() and count.isdigit():
            SCENARIOS[name] = replace(steady(int(n)), name=name, count=int(count))
        elif name not in SCENARIOS and name[:1] == "n" and name[1:].isdigit():
            SCENARIOS[name] = steady(int(name[1:]))
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenarios: {unknown}")
    for name in names:
        if args.rounds > 0:
            SCENARIOS[name] = replace(SCENARIOS[name], rounds=args.rounds)
        if args.passes > 0:
            SCENARIOS[name] = replace(SCENARIOS[name], passes=args.passes)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    software = [s for s in wanted if s in ("daphne", "uvicorn")] or ["daphne"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    compare_root = None
    if args.compare:
        compare_root = workdir / "compare"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(compare_root), args.compare],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    variants = []
    for sw in software:
        variants.append(Variant(sw, "project"))
        if compare_root is not None:
            variants.append(Variant(sw, "compare", compare_root, args.compare))
        if "baseline" in wanted:
            variants.append(Variant(sw, "baseline"))
    args.secret_key = secrets.token_urlsafe(32)
    args.redis_prefix = f"bench-{secrets.token_hex(4)}"

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"logs in {workdir}; variants {[v.name for v in variants]}; scenarios {names}")
    machine = machine_info()

    log(f"creating database {DB_NAME} and migrating")
    database_create()
    migrate_env = server_env(Variant("daphne", "project"), _FakeUpstream(), args)
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=migrate_env, check=True,
        stdout=(workdir / "migrate.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    upstream = Upstream(workdir)
    ctx = {"args": args, "upstream": upstream, "workdir": workdir, "tokens": []}
    runs: list[dict] = []
    problems: list[str] = []

    def attempt(variant: Variant, scenario: Scenario, n: int, pass_number: int = 1) -> dict | None:
        try:
            run = measure(variant, scenario, n, ctx, profile=args.profile, pass_number=pass_number)
        except Exception as exc:  # one broken row must not lose the others
            problems.append(f"{variant.name} {scenario.name} N={n} pass {pass_number}: {exc}")
            log(f"  FAILED: {exc}")
            return None
        runs.append(run)
        log(brief(run))
        return run

    try:
        if any(v.app == "project" for v in variants):
            server = Server(Variant("daphne", "project"), upstream, args, workdir, "login")
            try:
                ctx["tokens"] = login(server)
            finally:
                server.stop()
            wait_for_no_backends()
        for name in names:
            scenario = SCENARIOS[name]
            for pass_number in range(1, scenario.passes + 1):
                for variant in variants:
                    log(f"{variant.name} {name} (N={scenario.n}) pass {pass_number}"
                        f"/{scenario.passes}")  # fmt: skip
                    attempt(variant, scenario, scenario.n, pass_number)
        if args.capacity:
            for variant in variants:
                search_capacity(variant, runs, attempt)
    finally:
        upstream.stop()
        if compare_root is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(compare_root)], cwd=ROOT,
                check=False, capture_output=True,
            )  # fmt: skip
        if not args.no_redis:
            with contextlib.suppress(Exception):
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                keys = list(client.scan_iter(match=f"{args.redis_prefix}:*", count=1000))
                for i in range(0, len(keys), 500):
                    client.delete(*keys[i : i + 500])
        if not args.keep_db:
            with contextlib.suppress(Exception):
                database_drop()
    meta = {
        "date": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine,
        "redis": not args.no_redis,
        "nice": args.nice,
        "duration_s": time.monotonic() - started,
        "scenarios": {n: SCENARIOS[n].__dict__ for n in names},
        "logs": str(workdir),
        "problems": problems,
        "compare": args.compare,
    }
    text = report(runs, meta)
    if args.profile:
        log("profiling run: latest.* left untouched")
        print(text)
        return 0
    (out_dir / "latest.md").write_text(text)
    (out_dir / "latest.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    log(f"wrote {out_dir / 'latest.md'} and latest.json in {meta['duration_s']:.0f} s")
    print(text)
    return 0


class _FakeUpstream:
    """Stands in for the upstream where only its URL is needed (migrations)."""

    url = "http://127.0.0.1:9/v1"
    pid = 0


def brief(run: dict) -> str:
    return (
        f"  ok {run['streams_ok']} failed {run['streams_failed']} "
        f"ttft p50 {fmt(run['ttft_ms']['p50'])} ms (direct {fmt(run['ttft_direct_ms']['p50'])}) "
        f"lat p99 {fmt(run['latency_ms']['p99'])} ms (direct "
        f"{fmt(run['latency_direct_ms']['p99'])}) cpu/1k {fmt(run['cpu_s_per_1k_tokens'], 3)} s "
        f"cores {fmt(run['server_cpu_cores'], 2)}/{fmt(run['server_peak_cores_1s'], 2)} "
        f"rss/stream {fmt(run['rss_kb_per_open_stream'])}"
        f" KB writes/answer {fmt(run['db_writes_per_answer'], 2)} "
        f"others {fmt(run['harness']['other_processes_cores'], 2)} cores"
    )


if __name__ == "__main__":
    sys.exit(main())
