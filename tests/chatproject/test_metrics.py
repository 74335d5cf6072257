"""/metrics as an operator reads it after a known sequence of questions, errors, a refusal,
a resume and a stop.

With REDIS_URL set the sequence runs through two uvicorn processes writing to one
PROMETHEUS_MULTIPROC_DIR, and either answers for both; on the embedded default one
process (prometheus-client's single-process registry) stands in for both."""

import asyncio
import ipaddress
import logging
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts.models import User
from accounts.tokens import token_issue
from chat.limits import tokens_estimate
from chat.models import ChatRecord
from chatproject.errors import ApplicationError
from chatproject.metrics import dead_processes_forget
from tests.support.live import resume_chat, stream_chat

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(scope="module")
def metered(start_server, tmp_path_factory):
    env = {"CHAT_LIMIT_CONCURRENT_STREAMS": "1", "BEHIND_PROXY": "1"}
    if os.environ.get("REDIS_URL"):
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path_factory.mktemp("prometheus"))
        servers = (start_server(software="uvicorn", **env), start_server(software="uvicorn", **env))
    else:
        servers = (start_server(software="uvicorn", **env),) * 2
    yield servers
    for server in set(servers):  # their database connections go back now, not at the end
        server.stop()


def _scrape(url: str, **headers: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _until(predicate, *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.mark.django_db(transaction=True)
async def test_the_metrics_after_questions_an_error_a_refusal_a_resume_and_a_stop(
    metered, upstream
):
    first, second = metered
    openid = uuid.uuid4().hex[:16]
    user = await User.objects.acreate(username=f"wx_{openid}", openid=openid)
    token = (await sync_to_async(token_issue)(user=user)).token
    done = upstream.script(tokens=["a ", "b ", "c ", "d ", "e"], prompt_tokens=11)
    failing = upstream.script(status=500)
    long = upstream.script(tokens=[f"w{i} " for i in range(300)], pace=0.03)
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        answered = await stream_chat(a, token, {"question": f"one {done.tag}"})
        failed = await stream_chat(b, token, {"question": f"two {failing.tag}"})
        streaming = asyncio.Event()
        reading = asyncio.create_task(
            stream_chat(a, token, {"question": f"three {long.tag}"},
                        on_event=lambda e, t: e.event == "delta" and streaming.set())
        )  # fmt: skip
        await asyncio.wait_for(streaming.wait(), 10)
        refused = await stream_chat(b, token, {"question": "four, one too many"})
        during = _scrape(first.url)
        record = await ChatRecord.objects.aget(question=f"three {long.tag}")
        resumed = asyncio.create_task(resume_chat(b, token, record.pk, 1))
        await _until(lambda: _value(_scrape(first.url), "chat_streams_open") == 2)
        stopped = await b.post(
            f"/api/chat/records/{record.pk}/stop", headers={"Authorization": f"Bearer {token}"}
        )
        await reading
        await resumed
    await _until(lambda: _value(_scrape(second.url), "chat_streams_open") == 0)
    after = _scrape(first.url)
    stopped_text = (await ChatRecord.objects.aget(pk=record.pk)).answer

    assert (answered.done["status"], failed.done["error_code"]) == ("done", "upstream_unavailable")
    assert refused.status_code == 429
    assert stopped.json()["status"] == "stopped"
    assert _value(during, "chat_answers_generating") == 1
    assert _value(during, "chat_streams_open") == 1
    expected = {
        ("chat_questions_total", (("model", "test-model"),)): 3,
        ("chat_answers_total", (("status", "done"),)): 1,
        ("chat_answers_total", (("status", "error"),)): 1,
        ("chat_answers_total", (("status", "stopped"),)): 1,
        ("chat_answers_generating", ()): 0,
        ("chat_streams_open", ()): 0,
        ("chat_first_token_seconds_count", ()): 2,  # the failed answer had no text
        ("chat_answer_duration_seconds_count", ()): 3,
        ("chat_tokens_total", (("kind", "prompt"), ("source", "reported"))): 11,
        ("chat_tokens_total", (("kind", "completion"), ("source", "reported"))): 5,
        ("chat_tokens_total", (("kind", "completion"), ("source", "estimated"))): (
            tokens_estimate(stopped_text)
        ),
        ("chat_errors_total", (("code", "upstream_unavailable"), ("where", "stream"))): 1,
        ("chat_errors_total", (("code", "rate_limited"), ("where", "http"))): 1,
        ("chat_limit_refusals_total", (("limit", "concurrent_streams"),)): 1,
        ("chat_resumes_total", ()): 1,
        ("chat_stop_requests_total", ()): 1,
        ("chat_db_errors_total", ()): 0,
        ("chat_redis_errors_total", ()): 0,
    }
    assert {key: _value(after, key[0], **dict(key[1])) for key in expected} == expected
    assert tokens_estimate(stopped_text) > 0
    from_second = _scrape(second.url)  # either process answers for both
    assert {key: _value(from_second, key[0], **dict(key[1])) for key in expected} == expected


def test_metrics_are_hidden_from_clients_outside_the_allowed_networks(metered):
    server = metered[0]
    # Behind nginx (BEHIND_PROXY=1) the address that counts is the client's, not nginx's.
    through_proxy = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "198.51.100.1"})

    assert through_proxy.status_code == 404
    assert through_proxy.json() == {"error": {"code": "not_found", "message": "No such endpoint."}}
    assert _scrape(server.url, **{"X-Forwarded-For": "127.0.0.1"})


def test_the_allowed_networks_are_configurable(client, settings):
    settings.CHAT_METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]

    assert client.get("/metrics").status_code == 404  # from 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


# --- Database and Redis failures, counted from the log -------------------------------------


def _count(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_database_and_redis_failures_are_counted_from_the_lines_that_log_them():
    logger = logging.getLogger("chat.somewhere")
    db_before, redis_before = _count("chat_db_errors_total"), _count("chat_redis_errors_total")

    try:
        raise OperationalError("the server closed the connection")
    except OperationalError:
        logger.exception("could not save record 7")
    try:
        try:
            raise RedisConnectionError("Connection refused")
        except RedisConnectionError as exc:
            raise ApplicationError("x", "y") from exc
    except ApplicationError:
        logger.warning("gave up", exc_info=True)
    logger.error("a failure without an exception is no failure of either")

    assert _count("chat_db_errors_total") == db_before + 1
    assert _count("chat_redis_errors_total") == redis_before + 1


def test_a_new_process_forgets_the_live_gauges_of_processes_that_died(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid, live_pid = int(dead.stdout), os.getpid()
    for pid in (dead_pid, live_pid):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead_pid}.db").write_bytes(b"")  # counters stay: they only add up

    dead_processes_forget(str(tmp_path))

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{dead_pid}.db", f"gauge_livesum_{live_pid}.db",
    ]  # fmt: skip
