"""Bad input to the stream endpoint: a clear 4xx JSON error, and nothing half-written."""

import json

import pytest
from django.test import AsyncClient

from chat.models import ChatRecord, ChatSession

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/chat/stream"


@pytest.fixture
def client() -> AsyncClient:
    return AsyncClient()


async def _post(client: AsyncClient, token: str | None, body: bytes | dict, **headers: str):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(URL, data=data, content_type="application/json", headers=headers)


def _error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body["error"]) >= {"code", "message"}
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b'["a list"]', 400, "malformed_json"),
        ({}, 400, "question_required"),
        ({"question": "   \n "}, 400, "question_required"),
        ({"question": 42}, 400, "invalid_input"),
        ({"question": "nul\u0000inside"}, 400, "invalid_input"),
        (b'{"question": "lone \\ud800 surrogate"}', 400, "malformed_json"),
        ({"question": "hi", "client_id": "a\u0000b"}, 400, "invalid_input"),
        ({"question": "x" * 4001}, 400, "question_too_long"),
        ({"question": "hi", "model": "no-such-model"}, 400, "unknown_model"),
        ({"question": "hi", "session_id": "abc"}, 400, "invalid_input"),
        ({"question": "hi", "session_id": 999999}, 404, "session_not_found"),
        ({"question": "hi", "terminal": "desktop"}, 400, "invalid_input"),
        ({"question": "hi", "client_id": "x" * 65}, 400, "invalid_input"),
    ],
)
async def test_bad_input_is_refused_with_a_json_error_and_writes_nothing(
    client, owner_token, body, status, code
):
    response = await _post(client, owner_token, body)

    assert response.status_code == status
    assert _error(response)["code"] == code
    assert await ChatRecord.objects.acount() == 0
    assert await ChatSession.objects.acount() == 0


async def test_someone_elses_session_is_not_found(client, owner_token, other):
    theirs = await ChatSession.objects.acreate(owner=other, title="private")

    response = await _post(client, owner_token, {"question": "hi", "session_id": theirs.pk})

    assert response.status_code == 404
    assert _error(response)["code"] == "session_not_found"
    assert await ChatRecord.objects.acount() == 0


async def test_a_deleted_session_is_not_found(client, owner, owner_token):
    gone = await ChatSession.objects.acreate(owner=owner, title="old", is_deleted=True)

    response = await _post(client, owner_token, {"question": "hi", "session_id": gone.pk})

    assert response.status_code == 404


async def test_a_reused_client_id_is_a_conflict(client, owner, owner_token):
    session = await ChatSession.objects.acreate(owner=owner)
    await ChatRecord.objects.acreate(session=session, owner=owner, question="q", client_id="m1")

    response = await _post(client, owner_token, {"question": "again", "client_id": "m1"})

    assert response.status_code == 409
    assert _error(response)["code"] == "duplicate_client_id"
    assert await ChatRecord.objects.acount() == 1


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "not_authenticated"),
        ("Basic dXNlcjpwYXNz", "not_authenticated"),
        ("Bearer ", "not_authenticated"),
        ("Bearer forged-token:signature", "invalid_token"),
    ],
)
async def test_missing_or_bad_token_is_a_401(client, authorization, code):
    headers = {"Authorization": authorization} if authorization else {}
    response = await _post(client, None, {"question": "hi"}, **headers)

    assert response.status_code == 401
    assert _error(response)["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


async def test_auth_is_checked_before_the_body(client):
    response = await _post(client, None, b"{not json")

    assert response.status_code == 401


@pytest.mark.parametrize("method", ["get", "put", "delete"])
async def test_other_methods_are_refused(client, owner_token, method):
    response = await getattr(client, method)(
        URL, headers={"Authorization": f"Bearer {owner_token}"}
    )

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert _error(response)["code"] == "method_not_allowed"


async def test_the_other_slash_form_is_a_json_404_with_a_hint(client, owner_token):
    response = await client.post(URL + "/", data={}, content_type="application/json")

    assert response.status_code == 404
    error = _error(response)
    assert error["code"] == "not_found"
    assert "Did you mean /api/chat/stream?" in error["message"]
