"""The one door from async code to the ORM: a small, fixed pool of database threads.

Django's default (`sync_to_async` with thread_sensitive=True) gives every ASGI request its
own thread and so its own database connection, held for as long as the request lives. A
stream lives for the whole answer, so 500 open streams would need 500 PostgreSQL
connections. Here a handful of threads, each with one long-lived connection (pooled on
PostgreSQL), run every short unit of work for every stream.
"""

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

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
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.is_usable():
            connection.close()
        connection.errors_occurred = False


async def run_db(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run one synchronous ORM unit of work without blocking the event loop."""
    call = sync_to_async(_unit_of_work, thread_sensitive=False, executor=_executor())
    return await call(func, *args, **kwargs)


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
