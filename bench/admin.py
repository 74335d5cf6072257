"""The moderation admin at scale (issue 21): how long the dashboard, the records list, the
review queue, a record's page and the CSV export take with 100,000 records, on SQLite and
on PostgreSQL. Run by hand; never a timed test.

    .venv/bin/python -m bench.admin                          # both databases, 100,000 records
    .venv/bin/python -m bench.admin --db sqlite --records 20000 --runs 3

Each database gets a scratch copy, migrated and seeded with records spread over the last
30 days (Chinese questions and answers of every length, five models, ratings, errors,
handoff and stream records): a file in a temporary folder for SQLite, the database
`bench_admin` on 127.0.0.1:5432 (user postgres, trust) for PostgreSQL, dropped at the end.
PostgreSQL gets VACUUM ANALYZE after seeding (what autovacuum does to a table that size);
SQLite is left as it comes, as the embedded default runs. Each page is then rendered
through Django's test client in this process (middleware, admin, templates: everything
but the socket), once to warm up and then --runs times; the export streams the whole
table through the real async response. Writes bench/results/admin.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

from bench.database import PG_ADMIN_URL
from bench.machine import code_fingerprint, machine_info
from bench.paths import RESULTS

DB_NAME = "bench_admin"
BATCH = 5000
MODELS = ("deepseek", "qwen-plus", "gpt-4o-mini", "moonshot", "local")
PARAGRAPH = (
    "根据你的描述，这个问题通常有三个原因：一是配置没有生效，二是缓存还在使用旧的数据，"
    "三是网络代理改写了请求。建议按下面的步骤逐一排查，并在每一步之后重新测试。"
)


# --- The parent: one child process per database ---------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="timed renders of each page")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.records, args.runs)))
        return
    results = {}
    for db in args.db.split(","):
        results[db] = _run_child(db, args)
        print(f"{db}: {json.dumps(results[db], indent=1)}", flush=True)
    report = _report(results, args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "admin.md").write_text(report)
    print(report)


def _run_child(db: str, args: argparse.Namespace) -> dict:
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-admin",
        "ALLOWED_HOSTS": "testserver",
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "bench.admin", "--child", db,
               "--records", str(args.records), "--runs", str(args.runs)]  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        if db == "sqlite":
            env.pop("DATABASE_URL", None)
            env["SQLITE_PATH"] = str(Path(scratch) / "admin.sqlite3")
            env["CHAT_VAR_DIR"] = scratch
        else:
            _postgres(f"DROP DATABASE IF EXISTS {DB_NAME}", f"CREATE DATABASE {DB_NAME}")
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
        try:
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        finally:
            if db != "sqlite":
                _postgres(f"DROP DATABASE IF EXISTS {DB_NAME}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _postgres(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


# --- The child: seed, then measure --------------------------------------------------------


def _measure(records: int, runs: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    _seed(records)
    seeded = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE chat_chatrecord")
    client, staff = _staff_client()
    record_id = _a_record_with_a_conversation()
    pages = {
        "dashboard": "/admin/dashboard/",
        "records list (100 rows)": "/admin/chat/chatrecord/",
        "review queue (100 rows)": "/admin/chat/chatrecord/?moderation=queue",
        "search + filter": "/admin/chat/chatrecord/?q=缓存&status__exact=done",
        "record page": f"/admin/chat/chatrecord/{record_id}/change/",
        "admin index (queue size)": "/admin/",
    }
    return {
        "vendor": connection.vendor,
        "records": records,
        "seed_seconds": round(seeded, 1),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "pages": {name: _time_page(client, url, runs) for name, url in pages.items()},
        "export": asyncio.run(_time_export(staff)),
    }


def _seed(count: int) -> None:
    from django.utils import timezone

    from accounts.models import User
    from chat.models import ChatRecord, ChatSession

    rng = random.Random(21)
    now = timezone.now()
    users = User.objects.bulk_create(
        User(username=f"wx_bench{n}", openid=f"bench-{n}", nickname=f"用户{n}")
        for n in range(max(count // 20, 1))
    )
    sessions = ChatSession.objects.bulk_create(
        ChatSession(owner=users[n % len(users)], title=f"会话 {n}")
        for n in range(max(count // 5, 1))
    )
    batch = []
    for n in range(count):
        session = sessions[n % len(sessions)]
        status = rng.choices(["done", "stopped", "interrupted", "error"], [92, 4, 2, 2])[0]
        rating = rng.choices(["none", "useful", "not_useful"], [80, 12, 8])[0]
        created = now - timedelta(seconds=rng.randint(0, 30 * 86400 - 1))
        batch.append(
            ChatRecord(
                session=session,
                owner_id=session.owner_id,
                question=f"问题 {n}：为什么配置改了还是不生效？"
                + "请详细说明。" * rng.randint(0, 5),
                answer="" if status == "error" else PARAGRAPH * rng.choice([1, 2, 4, 8, 20]),
                model_name=rng.choice(MODELS),
                status=status,
                error_code={"error": "upstream_timeout", "interrupted": "server_lost"}.get(
                    status, ""
                ),
                rating="none" if status == "error" else rating,
                rating_reason="没有回答我的问题" if rating == "not_useful" else "",
                terminal=rng.choice(["miniprogram", "webview", "api"]),
                source=rng.choices(["stream", "handoff"], [85, 15])[0],
                created_at=created,
                first_token_ms=None if status == "error" else int(rng.lognormvariate(6.6, 0.5)),
                finished_at=created + timedelta(seconds=8),
                prompt_tokens=rng.randint(20, 900),
                completion_tokens=rng.randint(20, 1500),
            )
        )
        if len(batch) == BATCH:
            ChatRecord.objects.bulk_create(batch)
            batch = []
    ChatRecord.objects.bulk_create(batch)


def _staff_client():
    from django.test import Client

    from accounts.models import User

    staff = User.objects.create_superuser(username="bench-staff", password="bench-pass-123")
    client = Client()
    client.force_login(staff)
    return client, staff


def _a_record_with_a_conversation() -> int:
    from chat.models import ChatRecord, ChatSession

    busiest = ChatSession.objects.order_by("pk").first()
    return ChatRecord.objects.filter(session=busiest).order_by("created_at").last().pk


def _time_page(client, url: str, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        first = client.get(url)
    queries = len(captured)  # now: the log is emptied at the start of every request
    assert first.status_code == 200, (url, first.status_code)
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert response.status_code == 200
    return {
        "ms_median": round(statistics.median(walls) * 1000),
        "ms_min": round(min(walls) * 1000),
        "cpu_ms_median": round(statistics.median(cpus) * 1000),
        "queries": queries,
        "kb": round(len(first.content) / 1024),
    }


async def _time_export(staff) -> dict:
    from django.test import AsyncClient

    client = AsyncClient()
    await client.aforce_login(staff)
    tracemalloc.start()
    wall = time.perf_counter()
    response = await client.get("/admin/chat/chatrecord/export/")
    size = pieces = 0
    async for chunk in response.streaming_content:
        size += len(chunk)
        pieces += 1
    seconds = time.perf_counter() - wall
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds": round(seconds, 1),
        "mb": round(size / 1024 / 1024, 1),
        "pieces": pieces,
        "peak_python_mb": round(peak / 1024 / 1024, 1),
    }


# --- The report ---------------------------------------------------------------------------


def _report(results: dict, args: argparse.Namespace) -> str:
    machine = machine_info()
    databases = list(results)
    lines = [
        f"# Moderation admin with {args.records:,} records",
        "",
        f"`python -m bench.admin --db {args.db} --records {args.records} --runs {args.runs}`"
        f" at {code_fingerprint()}, {time.strftime('%Y-%m-%d')}; {machine['cpu']},"
        f" {machine['cores']} cores; load average at start {' '.join(machine['loadavg_at_start'])}"
        " (the machine is shared: wall times move with it, CPU less so).",
        "",
        "Rendered in-process through Django's test client, after one warm-up render:"
        f" median (min) wall time of {args.runs}, this process's CPU (SQLite's work included;"
        " PostgreSQL's server is another process), queries per render.",
        "",
        "| page | "
        + " | ".join(f"{db}: ms median (min) | CPU ms | queries" for db in databases)
        + " |",
        "|---|" + "---|---|---|" * len(databases),
    ]
    for page in results[databases[0]]["pages"]:
        cells = []
        for db in databases:
            figures = results[db]["pages"][page]
            cells.append(
                f"{figures['ms_median']} ({figures['ms_min']}) | {figures['cpu_ms_median']}"
                f" | {figures['queries']}"
            )
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    lines += ["", "CSV export of every record (streamed through the async response):", ""]
    for db in databases:
        export = results[db]["export"]
        lines.append(
            f"- {db}: {export['mb']} MB in {export['pieces']} pieces, {export['seconds']} s;"
            f" peak Python memory while streaming {export['peak_python_mb']} MB"
        )
    lines += [
        "",
        "Seeding: " + ", ".join(f"{db} {results[db]['seed_seconds']} s" for db in databases),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
