"""The one door from async code to the ORM: a small, fixed pool of database threads.

Django's default (`sync_to_async` with thread_sensitive=True) gives every ASGI request its
own thread and so its own database connection, held for as long as the request lives. A
stream lives for the whole answer, so 500 open streams would need 500 PostgreSQL
connections. Here a handful of threads, each with one long-lived connection (pooled on
PostgreSQL), run every short unit of work for every stream.
"""

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="db")


def _unit_of_work(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    # As at the start and end of a request: drop a connection that broke or aged out
    # (with a PostgreSQL pool, hand it back to the pool).
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


async def run_db(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run one synchronous ORM unit of work without blocking the event loop."""
    call = sync_to_async(_unit_of_work, thread_sensitive=False, executor=_executor())
    return await call(func, *args, **kwargs)
