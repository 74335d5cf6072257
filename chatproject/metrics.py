"""What the service is doing, for Prometheus: `/metrics`, in its text format.

Counted per question, per answer and per event (a resume, a stop, an error), never per
model chunk: the relay's per-token path has no metric work (bench/).

Several server processes on one host share one view of their metrics when
`PROMETHEUS_MULTIPROC_DIR` names a directory they all write to (prometheus-client's
multiprocess mode): any of them answers `/metrics` with the sum. A process removes its
live gauges' file when it exits, and each process starting removes those of processes
that died without doing so (docs/deploy.md says how to keep the directory).

`/metrics` answers only clients in `CHAT_METRICS_ALLOWED_NETWORKS` (default: loopback);
everyone else gets the same 404 as for a path that does not exist.
"""

import atexit
import contextlib
import ipaddress
import logging
import os
import re
from pathlib import Path

from django.conf import settings
from django.db import Error as DatabaseError
from prometheus_client import Counter, Gauge, Histogram, multiprocess
from redis.exceptions import RedisError

QUESTIONS = Counter("chat_questions", "Questions admitted: saved and sent to a model.", ["model"])
ANSWERS = Counter("chat_answers", "Answers ended, by the status saved.", ["status"])
ANSWERS_GENERATING = Gauge(
    "chat_answers_generating",
    "Answers being generated, with a client attached or not.",
    multiprocess_mode="livesum",
)
STREAMS_OPEN = Gauge(
    "chat_streams_open",
    "Event streams being sent to clients (questions and resumes).",
    multiprocess_mode="livesum",
)
FIRST_TOKEN_SECONDS = Histogram(
    "chat_first_token_seconds",
    "From a question's arrival to its answer's first text.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 60),
)
ANSWER_SECONDS = Histogram(
    "chat_answer_duration_seconds",
    "From a question's arrival to its answer's end, whatever the end.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
TOKENS = Counter(
    "chat_tokens",
    "Tokens of answers: kind prompt or completion; source reported by the model, or "
    "estimated from the text when it reported none (completion only).",
    ["kind", "source"],
)
ERRORS = Counter(
    "chat_errors",
    "Errors by code: HTTP error answers (where=http), error events in streams (where=stream).",
    ["where", "code"],
)
LIMIT_REFUSALS = Counter("chat_limit_refusals", "Requests refused by a limit (429).", ["limit"])
RESUMES = Counter("chat_resumes", "Event streams resumed.")
STOP_REQUESTS = Counter("chat_stop_requests", "Stop requests for open answers.")
CONTENT_BLOCKS = Counter(
    "chat_content_blocks",
    "Questions and answers a content check blocked (side: question or answer).",
    ["side"],
)
CONTENT_CHECK_FAILURES = Counter(
    "chat_content_check_failures",
    "Content checks that could not judge (HTTP error, errcode, timeout), by side and by "
    "CHAT_CONTENT_CHECK_ON_ERROR: open delivered unchecked, closed ended the stream.",
    ["side", "policy"],
)
CONTENT_CHECK_SECONDS = Histogram(
    "chat_content_check_seconds",
    "How long one content check call took.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
WECHAT_TOKEN_REFRESHES = Counter(
    "chat_wechat_token_refreshes", "WeChat access tokens fetched (stable_token) by this server."
)
DB_ERRORS = Counter("chat_db_errors", "Database failures, as logged.")
REDIS_ERRORS = Counter("chat_redis_errors", "Redis failures, as logged.")


def error_count(*, where: str, code: str) -> None:
    ERRORS.labels(where=where, code=code).inc()


# --- Who may read /metrics (chatproject/views.py) ------------------------------------------


def metrics_allowed(address: str) -> bool:
    """Whether a client at `address` is in CHAT_METRICS_ALLOWED_NETWORKS."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in settings.CHAT_METRICS_ALLOWED_NETWORKS)


# --- Failures, counted from the log ---------------------------------------------------------


class FailureCountingHandler(logging.Handler):
    """Counts database and Redis failures from the log lines that report them.

    Every handled failure is logged with its exception (a checkpoint that failed, a save,
    Redis gone under a resume...), in whichever module it happens: counting here needs no
    hook in any of them."""

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        seen: set[int] = set()
        for _ in range(5):  # the exception and what caused it, a few links deep
            if error is None or id(error) in seen:
                return
            seen.add(id(error))
            if isinstance(error, DatabaseError):
                DB_ERRORS.inc()
                return
            if isinstance(error, RedisError):
                REDIS_ERRORS.inc()
                return
            error = error.__cause__ or error.__context__


# --- Several processes ----------------------------------------------------------------------

_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_processes_forget(directory: str) -> None:
    """Remove the live gauges of processes that died without doing so (a crash, SIGKILL),
    so that an answer they had open no longer counts as open. Counters stay: a total only
    grows, whichever process counted it."""
    for path in Path(directory).glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.search(path.name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):  # another process was faster
                multiprocess.mark_process_dead(int(match.group(1)), directory)


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    dead_processes_forget(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    atexit.register(multiprocess.mark_process_dead, os.getpid())
