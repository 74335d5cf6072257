"""One measurement: a fresh server for one (relay, scenario, N, pass), a warm-up, the load
generator's run with /proc readings of every process around it, and its summary (the
row of the report and of latest.json)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from bench.database import DB_NAME, db_writes, wait_for_no_backends, writes_delta
from bench.machine import code_fingerprint
from bench.processes import Server, Variant, renice, run_loadgen
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
from bench.scenarios import Scenario


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
            # The bench database's backends serve only this server: same footing.
            renice(readings["pg_pids"])
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
