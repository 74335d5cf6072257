"""Every response carries the same security headers, streams included; HTML pages a
Content-Security-Policy that allows no inline script."""

import pytest
from django.test import Client

from tests.support.live import read_events

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def _security_headers(headers) -> dict[str, str]:
    return {name: headers.get(name) for name in SECURITY_HEADERS}


@pytest.mark.django_db(transaction=True)
async def test_a_stream_carries_the_same_security_headers_as_the_api(live_client, owner_token):
    stream = await read_events(
        live_client,
        "POST",
        "/api/chat/stream",
        token=owner_token,
        content=b'{"question": "hi"}',
        headers={"Content-Type": "application/json"},
    )
    json_answer = await live_client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {owner_token}"}
    )

    assert stream.status_code == 200
    assert stream.saw_done_marker
    assert _security_headers(stream.headers) == SECURITY_HEADERS
    assert _security_headers(json_answer.headers) == SECURITY_HEADERS


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/"])
def test_html_pages_forbid_inline_script(client: Client, path: str):
    page = client.get(path)

    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in page.content.decode()  # Swagger UI's start-up script is a file


@pytest.mark.django_db
def test_json_needs_no_policy(client: Client):
    assert "Content-Security-Policy" not in client.get("/healthz")
