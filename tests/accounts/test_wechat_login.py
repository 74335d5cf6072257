"""WeChat login against a local code2Session server: users, tokens, and every WeChat failure."""

import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from accounts.models import AccessToken, User
from tests.support.live import free_port
from tests.support.wechat import Answer, FakeWechat

pytestmark = pytest.mark.django_db

URL = "/api/auth/wechat/login"
APP_ID = "wx-test-app"
APP_SECRET = "test-app-secret-5f3c"


@pytest.fixture(scope="module")
def wechat() -> Iterator[FakeWechat]:
    with FakeWechat() as server:
        yield server


@pytest.fixture(autouse=True)
def _wechat_settings(settings, wechat: FakeWechat) -> None:
    settings.WECHAT_APP_ID = APP_ID
    settings.WECHAT_APP_SECRET = APP_SECRET
    settings.WECHAT_API_BASE = wechat.base_url
    settings.WECHAT_TIMEOUT_SECONDS = 0.5


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line written during the test, formatted (caplog may be disabled)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield lines
    root.removeHandler(handler)


def _login(client: Client, body: dict):
    return client.post(URL, data=body, content_type="application/json")


def _me(client: Client, token: str):
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_a_new_user_logs_in_and_gets_a_working_token(client, wechat):
    code = wechat.user_code("o_new_alice", unionid="u_alice", key="a2V5LWFsaWNl")

    response = _login(client, {"code": code})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"token", "expires_at", "created"}
    assert body["created"] is True
    user = User.objects.get(openid="o_new_alice")
    assert user.unionid == "u_alice"
    assert user.wechat_session_key == "a2V5LWFsaWNl"
    assert not user.has_usable_password()
    assert _me(client, body["token"]).json()["openid"] == "o_new_alice"
    assert wechat.requests[-1] == {
        "appid": APP_ID,
        "secret": APP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }


def test_a_returning_user_is_found_and_their_session_key_refreshed(client, wechat):
    first = _login(client, {"code": wechat.user_code("o_bob", key="b2xkLWtleQ==")}).json()
    later_code = wechat.user_code("o_bob", unionid="u_bob", key="bmV3LWtleQ==")

    response = _login(client, {"code": later_code})

    assert response.status_code == 200
    assert response.json()["created"] is False
    assert response.json()["token"] != first["token"]
    user = User.objects.get(openid="o_bob")
    assert (user.wechat_session_key, user.unionid) == ("bmV3LWtleQ==", "u_bob")
    assert User.objects.count() == 1
    assert AccessToken.objects.filter(user=user).count() == 2


def test_the_session_key_never_leaves_the_server(client, wechat, log_lines):
    key = "c2VjcmV0LXNlc3Npb24ta2V5"
    response = _login(client, {"code": wechat.user_code("o_carol", key=key)})
    token = response.json()["token"]
    me = _me(client, token)
    refused = _login(client, {"code": "c-denied"})

    for answer in (response, me, refused):
        assert key not in answer.content.decode()
        assert APP_SECRET not in answer.content.decode()
    assert "session_key" not in me.json()
    logged = "\n".join(log_lines)
    assert "errcode=40013" in logged  # WeChat's refusal is logged...
    assert APP_SECRET not in logged  # ...never the secret or the session key
    assert key not in logged


@pytest.mark.parametrize(
    ("code", "status", "error_code"),
    [
        ("c-invalid", 400, "wechat_invalid_code"),
        ("never-issued", 400, "wechat_invalid_code"),
        ("c-limit", 429, "wechat_rate_limited"),
        ("c-busy", 503, "wechat_busy"),
        ("c-denied", 502, "wechat_error"),
        ("c-garbage", 502, "wechat_error"),
        ("c-http500", 502, "wechat_unavailable"),
        ("c-slow", 504, "wechat_timeout"),
    ],
)
def test_wechat_failures_are_clear_json_errors_and_create_no_one(
    client, wechat, code, status, error_code
):
    response = _login(client, {"code": code})

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == error_code
    assert response.json()["error"]["message"]
    assert not User.objects.exists()
    assert not AccessToken.objects.exists()


def test_a_code_works_once(client, wechat):
    code = wechat.user_code("o_dave")
    assert _login(client, {"code": code}).status_code == 201

    again = _login(client, {"code": code})  # WeChat says 40163: code been used

    assert again.status_code == 400
    assert again.json()["error"]["code"] == "wechat_invalid_code"


def test_an_unreachable_wechat_is_a_502(client, settings):
    settings.WECHAT_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    response = _login(client, {"code": "c-as-o_erin"})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "wechat_unavailable"


@pytest.mark.parametrize("missing", ["WECHAT_APP_ID", "WECHAT_APP_SECRET"])
def test_without_app_id_and_secret_login_is_not_configured(client, settings, wechat, missing):
    setattr(settings, missing, "")
    asked = len(wechat.requests)

    response = _login(client, {"code": wechat.user_code("o_frank")})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "wechat_not_configured"
    assert len(wechat.requests) == asked


def test_a_success_body_with_errcode_zero_is_a_success(client, wechat):
    wechat.script("c-zero", Answer({"errcode": 0, "openid": "o_zero", "session_key": "eg=="}))

    response = _login(client, {"code": "c-zero"})

    assert response.status_code == 201
    assert User.objects.filter(openid="o_zero").exists()


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 129}, {"code": None}])
def test_a_missing_or_odd_code_is_refused_before_asking_wechat(client, wechat, body):
    asked = len(wechat.requests)

    response = _login(client, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert len(wechat.requests) == asked


def test_a_disabled_user_is_refused(client, wechat):
    User.objects.create(username="wx_o_gone", openid="o_gone", is_active=False)

    response = _login(client, {"code": wechat.user_code("o_gone")})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_disabled"
    assert not AccessToken.objects.exists()
