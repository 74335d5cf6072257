"""Content security as a user and an operator meet it: real server processes checking with
WeChat's msgSecCheck (the local test server, tests/support/wechat.py) and the test
upstream as the model.

With REDIS_URL set (CI's PostgreSQL + Redis pass) questions alternate between two uvicorn
processes sharing the access token in Redis; on the embedded default one process stands
in for both."""

import asyncio
import os
import re
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import User
from accounts.tokens import token_issue
from chat.models import ChatRecord, ModerationEvent
from tests.support.live import stream_chat
from tests.support.wechat import LABELS, FakeWechat

pytestmark = pytest.mark.django_db(transaction=True)

RISKY = "forbidden-thing"
_CHECKED = {
    "CHAT_CONTENT_CHECK": "wechat",
    "CHAT_CONTENT_CHECK_TIMEOUT_SECONDS": "0.5",
    # Small windows, so that an answer of a few hundred characters takes several.
    "CHAT_CONTENT_CHECK_MAX_CHARS": "200",
    "CHAT_DETACH_GRACE_SECONDS": "30",
}


@pytest.fixture(scope="module")
def wechat():
    with FakeWechat() as server:
        yield server


@pytest.fixture(autouse=True)
def _wechat_as_usual(wechat: FakeWechat) -> None:
    wechat.risky_words = {RISKY}
    wechat.review_words = {"borderline-thing"}
    wechat.check_failure = ""
    wechat.check_delay = 0.0
    wechat.token_seconds = 7200


def _env(wechat: FakeWechat, **overrides: str) -> dict[str, str]:
    return {
        **_CHECKED,
        "WECHAT_APP_ID": wechat.app_id,
        "WECHAT_APP_SECRET": wechat.app_secret,
        "WECHAT_API_BASE": wechat.base_url,
        **overrides,
    }


@pytest.fixture(scope="module")
def checked(start_server, wechat):
    """Two uvicorn processes checking with WeChat, failing closed (one without Redis)."""
    first = start_server(software="uvicorn", **_env(wechat))
    second = (
        start_server(software="uvicorn", **_env(wechat)) if os.environ.get("REDIS_URL") else first
    )
    yield first, second
    for server in {first, second}:  # their database connections go back now
        server.stop()


@pytest.fixture(scope="module")
def fail_open(start_server, wechat):
    server = start_server(software="uvicorn", **_env(wechat, CHAT_CONTENT_CHECK_ON_ERROR="open"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keywords(start_server):
    """The keyword list, as the embedded default would run it: no WeChat at all."""
    env = {"CHAT_CONTENT_CHECK": "keywords", "CHAT_CONTENT_CHECK_KEYWORDS": f"{RISKY},禁词"}
    server = start_server(software="uvicorn", **env)
    yield server
    server.stop()


@pytest.fixture
async def clients(checked):
    async with (
        httpx.AsyncClient(base_url=checked[0].url, timeout=30) as first,
        httpx.AsyncClient(base_url=checked[1].url, timeout=30) as second,
    ):
        yield first, second


async def _new_user() -> tuple[User, str]:
    openid = f"o_{uuid.uuid4().hex[:12]}"
    user = await User.objects.acreate(username=f"wx_{openid}", openid=openid)
    return user, (await sync_to_async(token_issue)(user=user)).token


async def _record(transcript) -> ChatRecord:
    return await ChatRecord.objects.aget(pk=transcript.start["record_id"])


async def _owner_sees(client: httpx.AsyncClient, token: str, record: ChatRecord) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    detail = await client.get(f"/api/chat/records/{record.pk}/", headers=headers)
    listed = await client.get(f"/api/chat/sessions/{record.session_id}/records/", headers=headers)
    return {"detail": detail.status_code, "listed": len(listed.json()["results"])}


def _ended_with(transcript, code: str) -> None:
    assert transcript.status_code == 200
    errors = transcript.of_type("error")
    assert [e.data["code"] for e in errors] == [code]
    assert errors[0].data["message"]
    assert transcript.of_type("done")[0].data["error_code"] == code


def _long_answer(before: int, word: str = "", after: int = 40) -> list[str]:
    """Tokens of an answer: `before` words, then `word` cut in three pieces, then more."""
    tokens = [f"w{i} " for i in range(before)]
    if word:
        third = len(word) // 3
        tokens += [word[:third], word[third : 2 * third], word[2 * third :], " "]
    return tokens + [f"v{i} " for i in range(after)]


# --- Question ------------------------------------------------------------------------------


async def test_a_risky_question_ends_the_stream_before_any_model_call(clients, wechat, upstream):
    user, token = await _new_user()
    scenario = upstream.script(tokens=["never", " sent"])
    checks_before = len(wechat.checks)

    transcript = await stream_chat(
        clients[0], token, {"question": f"tell me about {RISKY} {scenario.tag}"}
    )

    _ended_with(transcript, "content_blocked")
    assert transcript.text == ""
    await asyncio.sleep(0.3)
    assert not scenario.started.is_set(), "the model was asked"
    check = wechat.checks[checks_before]
    assert check["openid"] == user.openid
    assert check["scene"] == 2
    assert check["version"] == 2
    assert check["content"] == f"tell me about {RISKY} {scenario.tag}"
    record = await _record(transcript)
    assert (record.status, record.error_code) == ("error", "content_blocked")
    assert record.content_check_side == "question"
    assert record.content_check_suggest == "risky"
    assert record.content_check_label == LABELS["risky"]
    assert record.content_check_trace_id.startswith("trace-")
    assert record.is_hidden
    event = await ModerationEvent.objects.aget(record=record)
    assert (event.action, event.by_id) == ("hidden", None)
    assert record.content_check_trace_id in event.note
    assert await _owner_sees(clients[1], token, record) == {"detail": 404, "listed": 0}


async def test_a_passing_question_and_answer_arrive_whole_with_every_window_checked(
    clients, wechat, upstream
):
    user, token = await _new_user()
    scenario = upstream.script(tokens=_long_answer(120), pace=0.005)  # ~700 characters
    checks_before = len(wechat.checks)

    transcript = await stream_chat(clients[1], token, {"question": f"long {scenario.tag}"})

    assert transcript.done["status"] == "done"
    assert transcript.text == scenario.text
    windows = [c["content"] for c in wechat.checks[checks_before:] if c["openid"] == user.openid]
    assert windows[0] == f"long {scenario.tag}"
    answer_windows = windows[1:]
    assert len(answer_windows) >= 4  # 700 characters in windows of at most 200
    assert all(len(window) <= 200 for window in answer_windows)
    # Every character delivered was inside a window: each window ends where the text
    # passed on so far ends, and the last one ends with the answer.
    covered = 0
    for window in answer_windows:
        end = scenario.text.find(window) + len(window)
        assert scenario.text.find(window) >= 0
        assert end > covered
        assert scenario.text.find(window) <= covered  # no gap before it
        covered = end
    assert covered == len(scenario.text)
    record = await _record(transcript)
    assert (record.content_check_suggest, record.is_hidden) == ("", False)


# --- Answer --------------------------------------------------------------------------------


async def test_a_risky_answer_stops_mid_stream_and_not_one_byte_of_it_reaches_the_client(
    clients, wechat, upstream
):
    _, token = await _new_user()
    wechat.check_delay = (0.03, 0.08)
    scenario = upstream.script(tokens=_long_answer(60, RISKY, after=200), pace=0.01)

    transcript = await stream_chat(clients[0], token, {"question": f"go on {scenario.tag}"})

    _ended_with(transcript, "content_blocked")
    assert transcript.text, "the text before the risky word was delivered"
    assert scenario.text.startswith(transcript.text)
    assert RISKY not in transcript.text
    assert RISKY.encode() not in transcript.raw
    assert len(transcript.text) < scenario.text.index(RISKY) + len(RISKY)
    assert scenario.wait_aborted(3), "the model kept generating after the block"
    record = await _record(transcript)
    assert record.answer == transcript.text  # what was shown, nothing held back
    assert (record.content_check_side, record.content_check_suggest) == ("answer", "risky")
    assert record.content_check_trace_id.startswith("trace-")
    assert record.is_hidden
    assert await _owner_sees(clients[1], token, record) == {"detail": 404, "listed": 0}


async def test_a_review_verdict_is_kept_for_staff_and_the_answer_still_shown(
    clients, wechat, upstream
):
    _, token = await _new_user()
    scenario = upstream.script(tokens=_long_answer(10, "borderline-thing", after=10))

    transcript = await stream_chat(clients[0], token, {"question": f"hmm {scenario.tag}"})

    assert transcript.done["status"] == "done"
    assert transcript.text == scenario.text
    record = await _record(transcript)
    assert (record.content_check_side, record.content_check_suggest) == ("answer", "review")
    assert record.content_check_label == LABELS["review"]
    assert not record.is_hidden


# --- WeChat failing ------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["http500", "errcode", "timeout", "garbage"])
async def test_failing_closed_no_unchecked_text_is_shown(clients, wechat, upstream, failure):
    _, token = await _new_user()
    scenario = upstream.script(tokens=["unchecked", " text"])
    wechat.check_failure = failure

    transcript = await stream_chat(clients[1], token, {"question": f"q {scenario.tag}"})

    _ended_with(transcript, "content_check_unavailable")
    assert transcript.text == ""
    assert not scenario.started.is_set()
    record = await _record(transcript)
    assert (record.error_code, record.is_hidden, record.content_check_suggest) == (
        "content_check_unavailable", False, "",
    )  # fmt: skip


async def test_failing_closed_mid_answer_keeps_only_what_was_checked(clients, wechat, upstream):
    _, token = await _new_user()
    scenario = upstream.script(tokens=_long_answer(200), pace=0.01)

    def fail_after_first_text(event, transcript) -> None:
        if event.event == "delta":
            wechat.check_failure = "http500"

    transcript = await stream_chat(
        clients[0], token, {"question": f"q {scenario.tag}"}, on_event=fail_after_first_text
    )

    _ended_with(transcript, "content_check_unavailable")
    assert 0 < len(transcript.text) < len(scenario.text)
    assert (await _record(transcript)).answer == transcript.text


async def test_failing_open_the_answer_is_delivered_and_the_failure_counted(
    fail_open, wechat, upstream
):
    _, token = await _new_user()
    scenario = upstream.script(tokens=["shown", " any", "way", " at", " last"], pace=0.2)
    wechat.check_failure = "timeout"

    async with httpx.AsyncClient(base_url=fail_open.url, timeout=30) as client:
        transcript = await stream_chat(client, token, {"question": f"q {scenario.tag}"})
        metrics = (await client.get("/metrics")).text

    assert transcript.done["status"] == "done"
    assert transcript.text == "shown anyway at last"
    # One timeout for the question, one for the answer, not one for each of its windows.
    failures = "chat_content_check_failures_total"
    assert _sample(metrics, failures, side="question", policy="open") == 1
    assert _sample(metrics, failures, side="answer", policy="open") == 1
    assert "content check of the question failed (fail open)" in fail_open.log_text()


# --- The access token ----------------------------------------------------------------------


async def _burst(clients, upstream, count: int = 8) -> None:
    """`count` users ask at once, alternating between the processes; all answered."""
    scenario = upstream.script(tokens=["fine", " answer"], pace=0.02)
    users = [await _new_user() for _ in range(count)]
    transcripts = await asyncio.gather(
        *(
            stream_chat(clients[n % 2], token, {"question": f"{n} {scenario.tag}"})
            for n, (_, token) in enumerate(users)
        )
    )
    for transcript in transcripts:
        assert transcript.done["status"] == "done", transcript.of_type("error")
        assert transcript.text == "fine answer"


async def test_the_token_is_renewed_once_before_it_expires_whatever_the_load(
    clients, wechat, upstream
):
    # A token that has 3 s left before the renewal margin (300 s) starts.
    wechat.token_seconds = 303
    wechat.expire_tokens()
    await _burst(clients, upstream, count=2)
    wechat.token_seconds = 7200
    await asyncio.sleep(3.2)
    requests_before = len(wechat.token_requests)

    await _burst(clients, upstream)

    renewals = wechat.token_requests[requests_before:]
    assert len(renewals) == 1, renewals
    assert renewals[0]["force_refresh"] is False  # WeChat still took the old one


async def test_a_token_wechat_refuses_is_replaced_once_under_concurrent_questions(
    checked, clients, wechat, upstream
):
    await _burst(clients, upstream, count=2)  # a token is in use
    wechat.expire_tokens()
    requests_before = len(wechat.token_requests)

    await _burst(clients, upstream)

    renewals = wechat.token_requests[requests_before:]
    assert len(renewals) == 1, renewals
    assert renewals[0]["force_refresh"] is True
    assert renewals[0]["appid"] == wechat.app_id
    # Neither the app secret nor any token is ever logged.
    for server in set(checked):
        log = server.log_text()
        assert "token renewed" in log or server is not checked[0]
        assert wechat.app_secret not in log
        assert not re.search(r"tok-\d", log)


# --- The keyword list (no WeChat) ----------------------------------------------------------


async def test_the_keyword_list_blocks_questions_and_answers_with_no_network(
    keywords, wechat, upstream
):
    _, token = await _new_user()
    checks_before = len(wechat.checks)
    silent = upstream.script(tokens=["never"])
    risky_answer = upstream.script(tokens=_long_answer(30, "禁词", after=60), pace=0.01)
    clean = upstream.script(tokens=["all", " fine"])

    async with httpx.AsyncClient(base_url=keywords.url, timeout=30) as client:
        # Full-width letters and capitals are the same word.
        asked = await stream_chat(
            client, token, {"question": f"ＦＯＲＢＩＤＤＥＮ-thing {silent.tag}"}
        )
        answered = await stream_chat(client, token, {"question": f"a {risky_answer.tag}"})
        fine = await stream_chat(client, token, {"question": f"b {clean.tag}"})
        metrics = (await client.get("/metrics")).text

    _ended_with(asked, "content_blocked")
    assert not silent.started.is_set()
    _ended_with(answered, "content_blocked")
    assert "禁词" not in answered.text
    assert "禁词".encode() not in answered.raw
    assert risky_answer.text.startswith(answered.text)
    assert answered.text
    assert fine.text == "all fine"
    for transcript, side in ((asked, "question"), (answered, "answer")):
        record = await _record(transcript)
        assert (record.content_check_side, record.content_check_suggest) == (side, "risky")
        assert record.content_check_label == 21000
        assert record.is_hidden
    assert len(wechat.checks) == checks_before  # WeChat was never asked
    assert _sample(metrics, "chat_content_blocks_total", side="question") == 1
    assert _sample(metrics, "chat_content_blocks_total", side="answer") == 1


def _sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
