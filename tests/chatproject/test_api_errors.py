"""One language of errors: every /api/ answer is JSON in the documented shape, with English
messages (clients show their own words per code), whatever the Accept header, the method,
DEBUG, or the admin's language."""

import re

import pytest
from django.test import Client

from tests.support.servers import bearer

pytestmark = pytest.mark.django_db

SESSIONS = "/api/chat/sessions/"
BULK = "/api/chat/records/bulk"
CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert not CJK.search(str(error)), error  # English, fields included
    return error


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json, text/plain, */*",  # axios
        "*/*",
        "text/event-stream",  # httpx-sse's header, reused by a client for plain calls
        "text/event-stream, application/json",
    ],
)
def test_what_json_clients_send_in_accept_gets_json(client: Client, owner_token, accept):
    response = client.get(SESSIONS, headers={**bearer(owner_token), "Accept": accept})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_type_the_api_cannot_speak_is_a_documented_406(client: Client, owner_token):
    response = client.get(SESSIONS, headers={**bearer(owner_token), "Accept": "application/xml"})

    _assert_error(response, 406, "not_acceptable")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", SESSIONS, {"title": 5}, 400, "invalid_input"),
        ("post", SESSIONS, {"title": "x" * 500}, 400, "invalid_input"),
        ("get", "/api/chat/sessions/999/", None, 404, "session_not_found"),
        ("delete", SESSIONS, None, 405, "method_not_allowed"),
        ("post", "/api/chat/records/1/rating", {"rating": "great"}, 400, "invalid_input"),
        ("get", "/api/chat/search/", None, 400, "invalid_input"),
        ("patch", "/api/auth/me", {"avatar_url": "javascript:x"}, 400, "invalid_input"),
    ],
)
def test_messages_are_english_although_the_admin_speaks_chinese(
    client: Client, owner_token, settings, method, path, body, status, code
):
    assert settings.LANGUAGE_CODE == "zh-hans"
    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}

    response = getattr(client, method)(path, headers=bearer(owner_token), **kwargs)

    _assert_error(response, status, code)


def test_an_unauthenticated_call_is_english_too(client: Client):
    error = _assert_error(client.get(SESSIONS), 401, "not_authenticated")
    assert error["message"] == "Authentication credentials were not provided."


def test_a_malformed_bulk_body_answers_like_the_stream_endpoint(client: Client, owner_token):
    response = client.post(
        BULK, b'{"items": [1,}', content_type="application/json", headers=bearer(owner_token)
    )

    error = _assert_error(response, 400, "malformed_json")
    assert error["message"] == "The request body is not valid JSON."  # no parser internals


METHODS = ["get", "post", "put", "patch", "delete", "head", "options", "trace"]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_no_api_path_ever_answers_html(client: Client, settings, method, debug):
    settings.DEBUG = debug
    host_refused = getattr(client, method)(SESSIONS, headers={"Host": "evil.example"})
    unknown = getattr(client, method)("/api/no/such/thing")

    for response in (host_refused, unknown):
        assert response.status_code >= 400
        assert response["Content-Type"].startswith("application/json")
        if method != "head":
            assert "error" in response.json()
    assert host_refused.status_code == 400


def test_html_paths_keep_their_html_404(client: Client):
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
