"""Limits as a user meets them: a 429 that names the limit and says when to retry, on
whichever process the request lands.

With REDIS_URL set (CI's PostgreSQL + Redis pass) the requests alternate between two
uvicorn processes sharing the counters in Redis; on the embedded default one process
stands in for both, its counters in its own cache."""

import asyncio
import json
import math
import os
import signal
import time
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.models import User
from accounts.tokens import token_issue
from chat import limits
from chat.models import ChatRecord
from tests.conftest import live_models
from tests.support.live import stream_chat

pytestmark = pytest.mark.django_db(transaction=True)

# Every limit small enough to reach in a test. Each test lifts (0) the limits it is not
# about for its own user, as staff would in the admin.
_LIMITS = {
    "CHAT_LIMIT_CONCURRENT_STREAMS": "2",
    "CHAT_LIMIT_QUESTIONS_PER_MINUTE": "3",
    "CHAT_LIMIT_QUESTIONS_PER_DAY": "4",
    "CHAT_LIMIT_ANSWER_TOKENS_PER_DAY": "10",
    "CHAT_LIMIT_LOGINS_PER_IP_PER_MINUTE": "3",
    "CHAT_LIMIT_TICKET_EXCHANGES_PER_IP_PER_MINUTE": "2",
    "BEHIND_PROXY": "1",  # as behind nginx: the client's address from X-Forwarded-For
    "CHAT_DETACH_GRACE_SECONDS": "30",  # a detached answer goes on to its end
    "CHAT_REAP_AFTER_SECONDS": "2",  # a dead process's stream slots lapse after this
}
_NO_USAGE_MODEL = "test-no-usage"


@pytest.fixture(scope="module")
def limits_env(upstream) -> dict[str, str]:
    models = live_models(upstream)
    no_usage = {**models[0], "name": _NO_USAGE_MODEL, "include_usage": False}
    return {**_LIMITS, "LLM_MODELS": json.dumps([*models, no_usage])}


@pytest.fixture(scope="module")
def limited(start_server, limits_env):
    """Two uvicorn processes with small limits (one on the embedded default)."""
    first = start_server(software="uvicorn", **limits_env)
    second = (
        start_server(software="uvicorn", **limits_env) if os.environ.get("REDIS_URL") else first
    )
    yield first, second
    for server in {first, second}:  # their database connections go back now, not at the end
        server.stop()


@pytest.fixture
async def clients(limited):
    async with (
        httpx.AsyncClient(base_url=limited[0].url, timeout=30) as first,
        httpx.AsyncClient(base_url=limited[1].url, timeout=30) as second,
    ):
        yield first, second


async def _token_for_new_user(**own_limits: int) -> str:
    """A new user, with their own values for the limits named (0 lifts one)."""
    openid = uuid.uuid4().hex[:16]
    user = await User.objects.acreate(
        username=f"wx_{openid}",
        openid=openid,
        **{f"limit_{name}": value for name, value in own_limits.items()},
    )
    return (await sync_to_async(token_issue)(user=user)).token


async def _ask(client: httpx.AsyncClient, token: str, question: str, **body) -> httpx.Response:
    """Ask without reading the answer: the status, headers and (for a refusal) the body."""
    async with client.stream(
        "POST", "/api/chat/stream", json={"question": question, **body},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:  # fmt: skip
        await response.aread()
        return response


async def _all_admitted(clients, token: str, label: str, count: int) -> None:
    """`count` questions, alternating between the processes, every one admitted."""
    for turn in range(count):
        response = await _ask(clients[turn % 2], token, f"{label} {turn}")
        assert response.status_code == 200, response.text


def _assert_refused(response: httpx.Response, limit: str) -> int:
    """The refusal a client sees; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["limit"] == limit
    assert error["message"]
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


async def _wait_saved(question: str, *, within: float = 10.0) -> ChatRecord:
    deadline = time.monotonic() + within
    while True:
        record = await ChatRecord.objects.filter(question=question).afirst()
        if record is not None and record.is_finished:
            return record
        assert time.monotonic() < deadline, f"{question!r} not finished"
        await asyncio.sleep(0.05)


async def test_a_third_answer_at_once_is_refused_on_either_process_until_one_ends(
    clients, upstream
):
    token = await _token_for_new_user(
        questions_per_minute=0, questions_per_day=0, answer_tokens_per_day=0
    )
    long = upstream.script(tokens=[f"l{i} " for i in range(80)], pace=0.05)  # ~4 s
    short = upstream.script(tokens=[f"s{i} " for i in range(24)], pace=0.05)  # ~1.2 s
    reading = asyncio.create_task(stream_chat(clients[0], token, {"question": f"A {long.tag}"}))
    # The second answer's client hangs up at once: the answer goes on, and still counts.
    detached = await stream_chat(
        clients[1], token, {"question": f"B {short.tag}"}, on_event=lambda e, t: True
    )
    assert detached.status_code == 200

    refused = await _ask(clients[0], token, "C: one too many")
    also_refused = await _ask(clients[1], token, "C: one too many, elsewhere")

    assert _assert_refused(refused, limits.CONCURRENT_STREAMS) == 5
    _assert_refused(also_refused, limits.CONCURRENT_STREAMS)
    assert not await ChatRecord.objects.filter(question__startswith="C:").aexists()
    assert not reading.done()
    await _wait_saved(f"B {short.tag}")  # the detached answer ran to its end
    admitted = await _ask(clients[1], token, "D: a slot is free again")
    assert admitted.status_code == 200
    assert (await reading).done["status"] == "done"


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="one process: its slots die with it")
async def test_a_killed_process_holds_its_users_stream_slot_only_until_its_lease_lapses(
    start_server, limits_env, clients, upstream
):
    token = await _token_for_new_user(
        concurrent_streams=1, questions_per_minute=0, questions_per_day=0,
        answer_tokens_per_day=0,
    )  # fmt: skip
    doomed = start_server(software="uvicorn", **limits_env)
    endless = upstream.script(tokens=[f"e{i} " for i in range(400)], pace=0.05)
    async with httpx.AsyncClient(base_url=doomed.url, timeout=30) as client:
        started = await stream_chat(
            client, token, {"question": f"kill {endless.tag}"}, on_event=lambda e, t: True
        )
    assert started.status_code == 200

    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert doomed.wait_exit(5) is not None
    _assert_refused(await _ask(clients[0], token, "while the lease runs"), "concurrent_streams")
    while (response := await _ask(clients[1], token, "after the lease")).status_code == 429:
        assert time.monotonic() - killed_at < 6, "the dead process's slot never lapsed"
        await asyncio.sleep(0.2)
    assert response.status_code == 200
    assert time.monotonic() - killed_at >= 1.5  # the lease (2 s, renewed every 0.3 s)


async def test_the_fourth_question_within_a_minute_waits_until_the_first_leaves_the_window(
    clients,
):
    token = await _token_for_new_user(
        concurrent_streams=0, questions_per_day=0, answer_tokens_per_day=0
    )
    first_at = time.monotonic()
    await _all_admitted(clients, token, "minute", 3)

    retry_after = _assert_refused(await _ask(clients[1], token, "minute 3"), "questions_per_minute")

    assert 60 - (time.monotonic() - first_at) - 2 <= retry_after <= 60


async def test_the_days_questions_run_out_until_midnight_in_the_servers_time_zone(clients):
    token = await _token_for_new_user(
        concurrent_streams=0, questions_per_minute=0, answer_tokens_per_day=0
    )
    await _all_admitted(clients, token, "day", 4)

    retry_after = _assert_refused(await _ask(clients[0], token, "day 4"), "questions_per_day")

    now = timezone.localtime()  # TIME_ZONE, Asia/Shanghai by default, as the servers
    midnight = timezone.make_aware(
        datetime.combine(now.date() + timedelta(days=1), datetime.min.time()), now.tzinfo
    )
    assert abs(retry_after - (midnight - now).total_seconds()) <= 5


async def test_answer_tokens_count_as_reported_or_estimated_and_the_next_question_is_refused(
    clients, upstream
):
    token = await _token_for_new_user(
        concurrent_streams=0, questions_per_minute=0, questions_per_day=0
    )
    reported = upstream.script(tokens=["one ", "two ", "three ", "four ", "five ", "six"])
    estimated = upstream.script(tokens=["你好世界", "abcdef"])  # 4 + ceil(6 / 4) = 6 tokens

    first = await stream_chat(clients[0], token, {"question": f"tokens {reported.tag}"})
    assert first.done["usage"]["completion_tokens"] == 6  # 6 of 10 used, so: admitted
    second = await stream_chat(
        clients[1], token, {"question": f"tokens {estimated.tag}", "model": _NO_USAGE_MODEL}
    )
    assert second.done["usage"]["completion_tokens"] is None  # the model reported none
    assert limits.tokens_estimate(second.text) == 6

    refused = await _ask(clients[0], token, "tokens, third")
    _assert_refused(refused, "answer_tokens_per_day")


async def test_staff_values_for_one_user_raise_or_lift_a_limit_from_the_next_question(clients):
    token = await _token_for_new_user(
        concurrent_streams=0, questions_per_day=0, answer_tokens_per_day=0
    )
    await _all_admitted(clients, token, "staff", 3)
    _assert_refused(await _ask(clients[1], token, "staff, refused"), "questions_per_minute")

    user = await User.objects.aget(access_tokens__key_id=token.split(":")[0])
    user.limit_questions_per_minute = 5  # raised
    await user.asave(update_fields=["limit_questions_per_minute"])
    await _all_admitted(clients, token, "staff, raised", 2)
    _assert_refused(await _ask(clients[0], token, "staff, refused again"), "questions_per_minute")

    user.limit_questions_per_minute = 0  # lifted
    await user.asave(update_fields=["limit_questions_per_minute"])
    await _all_admitted(clients, token, "staff, lifted", 1)


async def test_a_refused_question_is_not_counted_and_an_unsaved_one_counts_for_nothing(
    clients,
):
    token = await _token_for_new_user(
        concurrent_streams=0, questions_per_minute=0, answer_tokens_per_day=0
    )
    await _all_admitted(clients, token, "count", 3)
    unsaved = await _ask(clients[1], token, "no such session", session_id=999_999)
    assert unsaved.status_code == 404
    await _all_admitted(clients, token, "count, after", 1)
    _assert_refused(await _ask(clients[0], token, "count 4"), "questions_per_day")
    _assert_refused(await _ask(clients[1], token, "count 5"), "questions_per_day")
    assert await ChatRecord.objects.filter(question__startswith="count").acount() == 4


# --- Per client address -----------------------------------------------------------------


def _address() -> str:
    """A documentation address (TEST-NET-3) of this test's own."""
    return f"203.0.113.{uuid.uuid4().int % 250 + 1}"


async def _dev_login(client: httpx.AsyncClient, forwarded_for: str) -> httpx.Response:
    return await client.post(
        "/api/auth/dev/login",
        json={"openid": f"o_{uuid.uuid4().hex[:12]}"},
        headers={"X-Forwarded-For": forwarded_for},
    )


async def test_logins_are_limited_per_client_address_behind_the_proxy(clients):
    address, other = _address(), "198.51.100.9"
    for turn in range(3):
        assert (await _dev_login(clients[turn % 2], address)).status_code == 201

    refused = await _dev_login(clients[1], address)
    # A client cannot pick its address: nginx appends the one it saw, which is what counts.
    spoofed = await _dev_login(clients[0], f"{other}, {address}")
    elsewhere = await _dev_login(clients[0], other)

    assert _assert_refused(refused, "logins_per_minute") <= 60
    _assert_refused(spoofed, "logins_per_minute")
    assert elsewhere.status_code == 201


async def test_ticket_exchanges_are_limited_per_client_address(clients):
    address = _address()

    def exchange(client: httpx.AsyncClient):
        return client.post(
            "/api/auth/webview-ticket/exchange",
            json={"ticket": "not-a-ticket"},
            headers={"X-Forwarded-For": address},
        )

    assert (await exchange(clients[0])).status_code == 401
    assert (await exchange(clients[1])).status_code == 401
    _assert_refused(await exchange(clients[0]), "ticket_exchanges_per_minute")


def test_without_the_proxy_setting_the_forwarded_address_is_not_believed(client, settings):
    settings.BEHIND_PROXY = False
    settings.CHAT_LIMIT_LOGINS_PER_IP_PER_MINUTE = 2
    settings.CHAT_REDIS_PREFIX = f"chat-test-{uuid.uuid4().hex[:8]}"
    address = f"192.0.2.{uuid.uuid4().int % 250 + 1}"  # this test's own REMOTE_ADDR

    answers = [
        client.post(
            "/api/auth/dev/login", {"openid": f"o_{turn}"}, content_type="application/json",
            REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=f"198.51.100.{turn}",
        )
        for turn in range(3)
    ]  # fmt: skip

    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert answers[2].status_code == 429
    assert answers[2].json()["error"]["limit"] == "logins_per_minute"


# --- Pieces -----------------------------------------------------------------------------


def test_the_token_estimate_counts_a_cjk_character_as_one_and_four_others_as_one():
    assert limits.tokens_estimate("") == 0
    assert limits.tokens_estimate("你好，世界！") == 6
    assert limits.tokens_estimate("hello world") == math.ceil(11 / 4)
    assert limits.tokens_estimate("中文 and English") == 2 + math.ceil(len(" and English") / 4)


def test_a_users_own_values_replace_the_settings_and_zero_means_none(settings):
    settings.CHAT_LIMIT_CONCURRENT_STREAMS = 2
    settings.CHAT_LIMIT_QUESTIONS_PER_MINUTE = 10
    settings.CHAT_LIMIT_QUESTIONS_PER_DAY = 300
    settings.CHAT_LIMIT_ANSWER_TOKENS_PER_DAY = 1000

    assert limits.user_limits((None, 0, 50, None)) == limits.UserLimits(2, 0, 50, 1000)


def test_staff_set_a_users_limits_in_the_admin(client, staff, owner):
    client.force_login(staff)
    url = f"/admin/accounts/user/{owner.pk}/change/"

    page = client.get(url)
    saved = client.post(
        url,
        {
            "username": owner.username, "is_active": "on", "openid": owner.openid,
            "date_joined_0": "2026-01-01", "date_joined_1": "08:00:00",
            "limit_concurrent_streams": "5", "limit_questions_per_minute": "0",
            "limit_questions_per_day": "", "limit_answer_tokens_per_day": "",
        },
    )  # fmt: skip

    assert page.status_code == 200
    assert "为该用户提高或取消限额" in page.content.decode()  # the admin speaks Chinese
    assert saved.status_code == 302, saved.content.decode()[:2000]
    owner.refresh_from_db()
    assert (owner.limit_concurrent_streams, owner.limit_questions_per_minute) == (5, 0)
    assert owner.limit_questions_per_day is None
