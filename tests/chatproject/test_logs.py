"""What the server writes to its log: one JSON object a line in production, with the user
and record ids, and never a token, the WeChat secret, a session_key, or what was asked and
answered."""

import json
import logging
import re
import secrets
import sys

import httpx
import pytest

from accounts.models import User
from chat import answer_watch
from chat.services import TurnOutcome
from chatproject.logs import (
    REDACTED,
    JsonFormatter,
    LogContextFilter,
    PlainFormatter,
    log_context,
    redact,
)
from tests.support.live import stream_chat
from tests.support.servers import bearer
from tests.support.wechat import FakeWechat

TOKEN_SHAPE = re.compile(r"[0-9a-f]{32}:[A-Za-z0-9_-]{43}")
WECHAT_SECRET = f"wx-secret-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def wechat():
    with FakeWechat() as server:
        yield server


@pytest.fixture(scope="module")
def logged_server(start_server, wechat):
    """The production launcher, production log format, and every logger at DEBUG: what a
    library would print at its most talkative must not leak either."""
    server = start_server(
        software="uvicorn",
        LOG_LEVEL="DEBUG",
        WECHAT_APP_ID="wx-test-app",
        WECHAT_APP_SECRET=WECHAT_SECRET,
        WECHAT_API_BASE=wechat.base_url,
    )
    yield server
    server.stop()  # its database connections go back now, not at the end of the session


@pytest.mark.django_db(transaction=True)
async def test_no_line_carries_a_secret_or_what_was_asked_and_answered(
    logged_server, wechat, upstream
):
    marker = secrets.token_hex(6)
    session_key = f"sk-{secrets.token_hex(12)}"
    answered = upstream.script(tokens=[f"answer-bravo-{marker} ", "第二段回答"], prompt_tokens=9)
    refused = upstream.script(status=400, error_message="model not found")
    long = upstream.script(tokens=[f"long-{marker}-{i} " for i in range(200)], pace=0.03)
    questions = {
        "answered": f"问题 alpha-{marker} {answered.tag}",
        "refused": f"question charlie-{marker} {refused.tag}",
        "stopped": f"question delta-{marker} {long.tag}",
    }
    seen: list[str] = [WECHAT_SECRET, session_key, *questions.values(), answered.text, long.text]
    async with httpx.AsyncClient(base_url=logged_server.url, timeout=30) as client:
        dev = (await client.post("/api/auth/dev/login", json={"openid": f"o_{marker}"})).json()
        code = wechat.user_code(f"o_wx_{marker}", key=session_key)
        wx = (await client.post("/api/auth/wechat/login", json={"code": code})).json()
        assert (await client.post("/api/auth/wechat/login", json={"code": "c-invalid"})).is_error
        assert (await client.post("/api/auth/wechat/login", json={"code": "c-http500"})).is_error
        assert (await client.get("/api/auth/me", headers=bearer(wx["token"]))).is_success
        ticket = (await client.post("/api/auth/webview-ticket", headers=bearer(wx["token"]))).json()
        page = await client.post("/api/auth/webview-ticket/exchange", json=ticket)
        assert page.is_success
        seen += [dev["token"], wx["token"], ticket["ticket"], page.json()["token"]]
        token = dev["token"]

        done = await stream_chat(client, token, {"question": questions["answered"]})
        error = await stream_chat(client, token, {"question": questions["refused"]})
        stopped = await stream_chat(
            client, token, {"question": questions["stopped"]},
            on_event=lambda e, t: e.event == "delta" and len(t.of_type("delta")) == 3,
        )  # fmt: skip
        record_id = stopped.start["record_id"]
        assert (await client.post(f"/api/chat/records/{record_id}/stop", headers=bearer(token))
                ).json()["status"] == "stopped"  # fmt: skip
        forged = token[:-4] + "AAAA"
        assert (await client.get("/api/auth/me", headers=bearer(forged))).status_code == 401
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 204

    lines = [line for line in logged_server.log_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for line in lines:
        assert not TOKEN_SHAPE.search(line), line
        for secret in seen:
            assert secret not in line, (secret, line)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    finished = {e["record_id"]: e for e in entries if e["message"].startswith("answer finished")}
    ids = [done.start["record_id"], error.start["record_id"], record_id]
    assert [finished[i]["status"] for i in ids] == ["done", "error", "stopped"]
    asker = await User.objects.aget(openid=f"o_{marker}")
    assert [finished[i]["user_id"] for i in ids] == [asker.pk] * 3
    assert finished[ids[0]]["completion_tokens"] == 2
    assert any("code2Session refused" in e["message"] for e in entries)  # the log is read


# --- The pieces ---------------------------------------------------------------------------


def test_redaction_removes_tokens_secrets_and_the_values_of_secret_keys(settings):
    settings.WECHAT_APP_SECRET = "0123456789abcdef-app-secret"
    token = "5174285e5a161a384b751064661446fa:HjGMm0RYLK0z1Ao_gNgA8BwQWq3hKTdx9MrjWb-InFU"
    text = (
        f"token {token}; Authorization: Bearer abc.def; GET /sns/jscode2session?appid=wx"
        "&secret=s3cr3t&js_code=c1; {'session_key': 'c2VzcyBrZXk=', 'openid': 'o_1'};"
        ' "api_key": "sk-live-1"; ticket=c_Tj; config 0123456789abcdef-app-secret;'
        " prompt_tokens=11 first_token_ms=12"
    )

    assert redact(text) == (
        f"token {REDACTED}; Authorization: Bearer {REDACTED}; GET /sns/jscode2session?appid=wx"
        f"&secret={REDACTED}&js_code=c1; {{'session_key': '{REDACTED}', 'openid': 'o_1'}};"
        f' "api_key": "{REDACTED}"; ticket={REDACTED}; config {REDACTED};'
        " prompt_tokens=11 first_token_ms=12"
    )


def _record(message: str, *args: object, exc_info=None) -> logging.LogRecord:
    record = logging.LogRecord("chat.test", logging.ERROR, __file__, 1, message, args, exc_info)
    LogContextFilter().filter(record)
    return record


def test_a_json_line_carries_the_ids_and_a_redacted_traceback():
    log_context(user_id=7, record_id=42)
    try:
        raise ValueError("refused token=abc123")
    except ValueError:
        record = _record("could not save %s", "it", exc_info=sys.exc_info())

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "could not save it"
    assert (entry["user_id"], entry["record_id"], entry["level"]) == (7, 42, "ERROR")
    assert "ValueError: refused token=[redacted]" in entry["exc_info"]


def test_a_plain_line_names_the_ids_after_the_message():
    log_context(user_id=7, record_id=42)

    line = PlainFormatter().format(_record("checkpoint failed"))

    assert line.endswith("ERROR chat.test checkpoint failed [user=7 record=42]")


@pytest.mark.parametrize("content", [False, True], ids=["default", "CHAT_LOG_CONTENT=1"])
async def test_the_text_of_an_answer_is_logged_only_when_a_setting_asks(settings, caplog, content):
    settings.CHAT_LOG_CONTENT = content
    record_id = 10_000 + content
    outcome = TurnOutcome(status="done", answer="the answer", completion_tokens=2)

    answer_watch.answer_begun(record_id=record_id, admission=None, model="m", question="the q")
    with caplog.at_level(logging.INFO, logger="chat.answer_watch"):
        await answer_watch.answer_ended(
            record_id=record_id, outcome=outcome, total_ms=5, saved=True
        )
    line = next(r for r in caplog.records if r.getMessage().startswith("answer finished"))

    assert (getattr(line, "question", None), getattr(line, "answer", None)) == (
        ("the q", "the answer") if content else (None, None)
    )
