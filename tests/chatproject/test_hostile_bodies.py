"""Hostile bodies on every API route: a documented 4xx JSON each time, one log line, never a
traceback. Routes come from the URL conf, so a new one is covered the day it lands."""

import json
import logging

import httpx
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from chat.api import BULK_BODY_MAX_BYTES
from chat.models import ChatRecord, ChatSession
from chat.serializers import ANSWER_MAX_CHARS
from chatproject.request_body import API_BODY_MAX_BYTES
from tests.support.servers import bearer

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# How each body may be refused (plus what a request without a token or with the wrong
# method hears first).
DOCUMENTED = {
    "payload_too_large",
    "malformed_json",
    "not_authenticated",
    "method_not_allowed",
    "not_found",
}


def _api_routes(patterns: list | None = None, prefix: str = "") -> list[URLPattern]:
    routes = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _api_routes(pattern.url_patterns, route)
        elif route.lstrip("^").startswith("api/"):
            routes.append(pattern)
    return routes


def _path(route: URLPattern, session: ChatSession, record: ChatRecord) -> str:
    if route.name is None:
        return "/api/no/such/endpoint"  # the catch-all 404
    ids = {"session_id": session.pk, "record_id": record.pk}
    return reverse(route.name, kwargs={name: ids[name] for name in route.pattern.converters})


def _limit(path: str) -> int:
    view = resolve(path).func
    return getattr(getattr(view, "view_class", view), "body_max_bytes", API_BODY_MAX_BYTES)


def _hostile_bodies(limit: int) -> dict[str, bytes]:
    return {
        "oversized": b'{"question": "' + b"a" * limit + b'"}',
        "deeply nested": b'{"ticket": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "wrong JSON type": b'"a string, not an object"',
        "invalid UTF-8": b'{"question": "\xff\xfe\xfd"}',
    }


@pytest.mark.django_db(transaction=True)
def test_every_api_route_refuses_every_hostile_body(owner, owner_token, caplog):
    session = ChatSession.objects.create(owner=owner, title="t")
    record = ChatRecord.objects.create(session=session, owner=owner, question="q", status="done")
    client = Client()
    sent = 0
    with caplog.at_level(logging.INFO):
        for route in _api_routes():
            path = _path(route, session, record)
            for kind, body in _hostile_bodies(_limit(path)).items():
                for method in METHODS:
                    for token in (owner_token, None):
                        headers = bearer(token) if token else {}
                        response = client.generic(
                            method, path, body, content_type="application/json", headers=headers
                        )
                        sent += 1
                        where = f"{method} {path} {kind} token={bool(token)}"
                        assert 400 <= response.status_code < 500, where
                        assert response["Content-Type"] == "application/json", where
                        assert response.json()["error"]["code"] in DOCUMENTED, where

    assert sent > 300  # the walk found the routes
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert len(caplog.records) <= sent  # at most one line per request


def _bulk_body_just_under_the_limit() -> bytes:
    """190 items with long answers (the figures of the report), padded to just under 8 MiB."""
    items = [
        {"client_id": f"m-{i}", "question": f"问题 {i}", "answer": "答" * ANSWER_MAX_CHARS}
        for i in range(190)
    ]
    body = json.dumps({"items": items}).encode()  # ensure_ascii: a \\u escape, 6 bytes a character
    while len(body) > BULK_BODY_MAX_BYTES:
        items.pop()
        body = json.dumps({"items": items}).encode()
    return body + b" " * (BULK_BODY_MAX_BYTES - len(body))  # JSON allows trailing space


@pytest.mark.django_db(transaction=True)
async def test_the_bulk_save_takes_a_body_of_exactly_its_documented_limit(live_client, owner_token):
    body = _bulk_body_just_under_the_limit()
    assert len(body) == BULK_BODY_MAX_BYTES

    saved = await live_client.post(
        "/api/chat/records/bulk",
        content=body,
        headers={**bearer(owner_token), "Content-Type": "application/json"},
    )
    too_large = await live_client.post(
        "/api/chat/records/bulk",
        content=body + b" ",
        headers={**bearer(owner_token), "Content-Type": "application/json"},
    )

    assert saved.status_code == 200, saved.text
    assert saved.json()["counts"]["created"] == len(json.loads(body)["items"]) > 60
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"


@pytest.mark.django_db(transaction=True)
def test_the_production_server_logs_one_line_per_hostile_request(start_server):
    server = start_server(software="uvicorn")  # the production launcher, no access log
    before = server.log_text().count("\n")
    paths = ["/api/auth/dev/login", "/api/auth/webview-ticket/exchange", "/api/chat/records/bulk"]
    nested = b'{"ticket": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bodies = [nested, b"x" * (20 * 2**20), b'{"ticket": "\xff"}']
    for path in paths:
        for body in bodies:
            response = httpx.post(
                server.url + path, content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code in (400, 401, 413)

    log = server.log_text()
    added = log.count("\n") - before
    assert "Traceback" not in log
    assert added == len(paths) * len(bodies), log


async def _chunked(body: bytes):
    """The body as an iterator: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), 7):
        yield body[start : start + 7]


@pytest.mark.django_db(transaction=True)
async def test_a_chunked_body_is_read_like_one_with_a_length(live_client, owner_token):
    json_headers = {"Content-Type": "application/json"}
    login = await live_client.post(
        "/api/auth/dev/login", content=_chunked(b'{"openid": "o_chunked"}'), headers=json_headers
    )
    created = await live_client.post(
        "/api/chat/sessions/",
        content=_chunked('{"title": "分块上传"}'.encode()),
        headers={**bearer(owner_token), **json_headers},
    )
    too_large = await live_client.post(
        "/api/auth/dev/login",
        content=_chunked(b'{"openid": "' + b"x" * API_BODY_MAX_BYTES + b'"}'),
        headers=json_headers,
    )

    assert login.status_code == 201, login.text  # a new user, signed in
    assert login.json()["token"]
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "分块上传"
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"
