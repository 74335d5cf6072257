"""The report, `latest.md`: the run's header (date, command, machine, versions), the
results table, the targets, the harness and machine table, the method; and the one-line
summary of a row logged while the run goes on."""

from __future__ import annotations

from bench.database import DB_NAME
from bench.targets import compare_section, targets_section


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pair_key(run: dict) -> tuple:
    """Which baseline row a project row is compared with: same server, scenario, pass."""
    return run["software"], run["scenario"], run["n"], run.get("pass", 1)


def _pass_label(run: dict) -> str:
    return f", pass {run['pass']}/{run['passes']}" if run.get("passes", 1) > 1 else ""


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
        "`chat/streaming/providers.py`, answer saved); `baseline` is",
        "`bench/baseline_relay.py`, a bare ASGI app relaying",
        "`openai.AsyncOpenAI().chat.completions.create(stream=True)` chunks as SSE with no",
        "auth and no database, served by the same server software.",
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
