"""The benchmark's stores: database `bench_relay` on PostgreSQL (created, migrated by the
run, dropped at the end) with its write counters, and the run's keys on Redis."""

from __future__ import annotations

import contextlib
import time

from bench.progress import log

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "bench_relay"
REDIS_URL = "redis://127.0.0.1:6379/0"


def database_url() -> str:
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def database_create() -> None:
    import psycopg

    database_drop()  # a run that was killed may have left it
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def database_drop() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (DB_NAME,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')


def db_writes() -> dict[str, list[int]]:
    """Tuples inserted / updated / deleted so far, per table of the bench database."""
    import psycopg

    url = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
    return {name: [ins, upd, dele] for name, ins, upd, dele in rows}


def wait_for_no_backends(timeout: float = 10.0) -> None:
    """Until every connection of a stopped server to the bench database has closed."""
    import psycopg

    url = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (DB_NAME,),
            ).fetchone()
            if count == 0:
                return
            time.sleep(0.1)
    log("warning: connections to the bench database still open; DB writes may be short")


def writes_delta(before: dict, after: dict) -> dict[str, list[int]]:
    out = {}
    for table, values in after.items():
        old = before.get(table, [0, 0, 0])
        diff = [a - b for a, b in zip(values, old, strict=True)]
        if any(diff):
            out[table] = diff
    return out


def redis_keys_delete(prefix: str) -> None:
    """Every key the project server wrote under `prefix` (the run's own; never a flush)."""
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
