"""The one door from async code to the ORM: a small, fixed pool of database threads.

Django's default (`sync_to_async` with thread_sensitive=True) gives every ASGI request its
own thread and so its own database connection, held for as long as the request lives. A
stream lives for the whole answer, so 500 open streams would need 500 PostgreSQL
connections. Here a handful of threads, each with one long-lived connection (pooled on
PostgreSQL), run every short unit of work for every stream.
"""

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import connection, connections

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="db")


def _unit_of_work(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    _drop_broken_connections()
    return func(*args, **kwargs)


def _drop_broken_connections() -> None:
    # Each database thread keeps its connection (taken from the pool once) across units of
    # work: handing it back and forth per query costs more than the query. Only a
    # connection that raised and no longer answers is closed, to be reopened on next use.
    for thread_connection in connections.all(initialized_only=True):
        if thread_connection.errors_occurred and not thread_connection.is_usable():
            thread_connection.close()
        thread_connection.errors_occurred = False


async def run_db(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run one synchronous ORM unit of work without blocking the event loop."""
    # Straight to the executor: asgiref's sync_to_async adds context copying and
    # thread-sensitivity machinery that a fixed pool of DB threads does not need
    # (connections are per thread, not per context), ~5% of a stream's CPU (bench/).
    work = functools.partial(_unit_of_work, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), work)


@contextmanager
def fixed_statement_cursor() -> Iterator:
    """A cursor for the fixed statements every answer runs (`chat/turn_store.py`).

    On PostgreSQL it binds parameters on the server: an answer's text is sent as it is
    instead of being quoted into the SQL in Python (Django's default cursor quotes every
    parameter client-side). Statements are not prepared: Django turns that off so that
    connection poolers keep working. Django's error mapping (IntegrityError...) is kept.
    Elsewhere, Django's own cursor."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def db_threads_close() -> None:
    """Close every database thread's connection (at shutdown, and before a test database
    is dropped). Each thread must run one closing task, so they wait for each other."""
    count = settings.CHAT_DB_THREADS
    all_there = threading.Barrier(count)

    def close() -> None:
        all_there.wait(timeout=10)
        connections.close_all()

    for future in [_executor().submit(close) for _ in range(count)]:
        future.result(timeout=15)
