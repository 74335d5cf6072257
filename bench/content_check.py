"""What content checks add to an answer's latency: the first token and every delta, with
WeChat's msgSecCheck answering at a realistic 30-80 ms (issue 22).

    .venv/bin/python -m bench.content_check                 # ~2 minutes
    .venv/bin/python -m bench.content_check --check-delay-ms 30-80 --answers 12 --at-once 20

One uvicorn process serves the project against the benchmark's upstream (bench/
upstream_proc.py: 60 tokens at 30 tokens/s, each stamped with its emission time) on
PostgreSQL (database `bench_content_check`, dropped at the end) and Redis (the run's own
key prefix, deleted at the end), once with content checks off and once with
`CHAT_CONTENT_CHECK=wechat` against the test WeChat server (tests/support/wechat.py, in
its own process, every check answered after a delay drawn from `--check-delay-ms`), in
alternating passes. For each it measures, from the client's side:

- first token: from sending the question to receiving the first delta;
- token delay: receive time minus the upstream's emission stamp, for every token;
- check calls per answer and their mean duration (the server's own /metrics).

Writes bench/results/content-check.md. Run by hand; never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.database import PG_ADMIN_URL, REDIS_URL, redis_keys_delete
from bench.machine import machine_info
from bench.paths import PY, RESULTS, ROOT
from bench.processes import Upstream, Variant, free_port, server_command, terminate

DB_NAME = "bench_content_check"
_STAMP = re.compile(rb"\[\[(\d+)\]\]")
_VARIANTS = ("off", "wechat")


def _database(action: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (DB_NAME,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        if action == "create":
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _env(upstream: Upstream, wechat_url: str, prefix: str, checks: str) -> dict[str, str]:
    model = {
        "name": "bench", "base_url": upstream.url, "api_key": "bench", "model": "bench-model",
        "max_retries": 0, "timeout": 60,
    }  # fmt: skip
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CHAT_DEV_LOGIN": "1",
        "LLM_MODELS": json.dumps([model]),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        "CHAT_REDIS_PREFIX": prefix,
        "SECURE_SSL_REDIRECT": "0",
        "CHAT_CONTENT_CHECK": checks,
        "WECHAT_APP_ID": "wx-test-app",
        "WECHAT_APP_SECRET": "test-app-secret",
        "WECHAT_API_BASE": wechat_url,
    }
    for limit in ("CONCURRENT_STREAMS", "QUESTIONS_PER_MINUTE", "QUESTIONS_PER_DAY",
                  "ANSWER_TOKENS_PER_DAY", "LOGINS_PER_IP_PER_MINUTE"):  # fmt: skip
        env[f"CHAT_LIMIT_{limit}"] = "0"
    return env


class _Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = server_command(Variant("uvicorn", "project"), self.port)
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start; see {log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start; see {log}")

    def stop(self) -> None:
        terminate(self.process, grace=10)


async def _answer(client: httpx.AsyncClient, token: str, tokens: int) -> dict:
    """One question; the first delta's arrival and every token's delay, in ms."""
    body = {"question": f"rate=30 n={tokens} {secrets.token_hex(4)}"}
    headers = {"Authorization": f"Bearer {token}"}
    sent = time.monotonic()
    first_token = None
    delays: list[float] = []
    status = None
    async with client.stream("POST", "/api/chat/stream", json=body, headers=headers) as response:
        async for chunk in response.aiter_raw():
            now_us = time.time() * 1e6
            if b"event: delta" in chunk and first_token is None:
                first_token = (time.monotonic() - sent) * 1000
            delays += [(now_us - int(stamp)) / 1000 for stamp in _STAMP.findall(chunk)]
            if b'"status":"done"' in chunk:
                status = "done"
    if status != "done" or first_token is None:
        raise RuntimeError(f"an answer did not finish: {status}")
    return {"first_token": first_token, "delays": delays}


async def _load(url: str, token: str, *, answers: int, at_once: int, tokens: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        alone = [await _answer(client, token, tokens) for _ in range(answers)]
        together = await asyncio.gather(*(_answer(client, token, tokens) for _ in range(at_once)))
    return {"alone": alone, "at_once": list(together)}


def _check_calls(url: str) -> tuple[float, float]:
    """Check calls so far and their total seconds, from the server's /metrics."""
    text = httpx.get(f"{url}/metrics").text
    count = re.search(r"^chat_content_check_seconds_count (\S+)$", text, re.M)
    total = re.search(r"^chat_content_check_seconds_sum (\S+)$", text, re.M)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def _percentile(values: list[float], point: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(point / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-delay-ms", default="30-80")
    parser.add_argument("--answers", type=int, default=12, help="one after the other")
    parser.add_argument("--at-once", type=int, default=20, help="then this many at once")
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-content-check-"))
    prefix = f"bench-{secrets.token_hex(4)}"
    wechat_port = free_port()
    wechat = subprocess.Popen(
        [PY, "-m", "tests.support.wechat", "--port", str(wechat_port),
         "--check-delay-ms", args.check_delay_ms],
        cwd=ROOT, stdout=(workdir / "wechat.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    upstream = Upstream(workdir)
    _database("create")
    results = {(variant, load): [] for variant in _VARIANTS for load in ("alone", "at_once")}
    calls: dict[str, list[float]] = {"count": [], "seconds": []}
    try:
        env = _env(upstream, f"http://127.0.0.1:{wechat_port}", prefix, "")
        migrate_log = (workdir / "migrate.log").open("wb")
        migrate = [PY, "manage.py", "migrate", "--noinput"]
        subprocess.run(
            migrate, cwd=ROOT, env=env, check=True, stdout=migrate_log, stderr=migrate_log
        )
        for n in range(args.passes):
            for variant in _VARIANTS if n % 2 == 0 else reversed(_VARIANTS):
                checks = "" if variant == "off" else "wechat"
                server_env = _env(upstream, f"http://127.0.0.1:{wechat_port}", prefix, checks)
                server = _Server(server_env, workdir / f"server-{variant}.log")
                try:
                    token = httpx.post(f"{server.url}/api/auth/dev/login",
                                       json={"openid": "bench_user"}).json()["token"]  # fmt: skip
                    asyncio.run(_load(server.url, token, answers=1, at_once=0, tokens=5))  # warm
                    before = _check_calls(server.url)
                    measured = asyncio.run(
                        _load(
                            server.url,
                            token,
                            answers=args.answers,
                            at_once=args.at_once,
                            tokens=args.tokens,
                        )
                    )
                    for load, answers in measured.items():
                        results[variant, load] += answers
                    after = _check_calls(server.url)
                    if variant == "wechat":
                        calls["count"].append(after[0] - before[0])
                        calls["seconds"].append(after[1] - before[1])
                finally:
                    server.stop()
                print(f"pass {n + 1}: {variant} done", file=sys.stderr, flush=True)
    finally:
        upstream.stop()
        terminate(wechat, grace=5)
        _database("drop")
        redis_keys_delete(prefix)
    _report(results, calls, args)


def _row(answers: list[dict]) -> dict:
    first = [a["first_token"] for a in answers]
    delays = [d for a in answers for d in a["delays"]]
    return {
        "first_p50": statistics.median(first), "first_p90": _percentile(first, 90),
        "delay_p50": statistics.median(delays), "delay_p90": _percentile(delays, 90),
        "delay_p99": _percentile(delays, 99), "answers": len(answers),
    }  # fmt: skip


_FIGURES = ("first_p50", "first_p90", "delay_p50", "delay_p90", "delay_p99")


def _report(results: dict, calls: dict[str, list[float]], args) -> None:
    checked = len(results["wechat", "alone"]) + len(results["wechat", "at_once"])
    per_answer = sum(calls["count"]) / checked if checked else 0
    mean_call = 1000 * sum(calls["seconds"]) / sum(calls["count"]) if sum(calls["count"]) else 0
    info = machine_info()
    lines = [
        "# Content checks: the added latency (`python -m bench.content_check`)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; msgSecCheck answering after "
        f"{args.check_delay_ms} ms; per pass and variant {args.answers} answers one after the "
        f"other, then {args.at_once} at once; {args.tokens} tokens at 30 tokens/s; "
        f"{args.passes} passes, alternating. First token: question sent to first delta "
        "received; token delay: a token's arrival at the client minus its emission by the "
        "upstream.",
        "",
        "| load | checks | answers | first token p50 | p90 | token delay p50 | p90 | p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for load, name in (("alone", "one at a time"), ("at_once", f"{args.at_once} at once")):
        off, on = _row(results["off", load]), _row(results["wechat", load])
        for label, row in (("off", off), ("msgSecCheck", on)):
            cells = " | ".join(f"{row[figure]:.0f} ms" for figure in _FIGURES)
            lines.append(f"| {name} | {label} | {row['answers']} | {cells} |")
        added = " | ".join(f"**{on[figure] - off[figure]:+.0f} ms**" for figure in _FIGURES)
        lines.append(f"| {name} | added | | {added} |")
    lines += [
        "",
        f"Check calls per answer (the question's included): {per_answer:.1f}; mean call "
        f"{mean_call:.0f} ms as the server measured it (the access token fetched before).",
        "",
        f"Machine: {info.get('cpu')}, {info.get('cores', '?')} cores, shared with other work;"
        f" commit {info.get('git', {}).get('commit', '?')}.",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "content-check.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
