"""The caller's profile, token expiry and revocation over HTTP (DRF and the stream view)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import AccessToken
from accounts.tokens import token_issue
from tests.support.servers import bearer

pytestmark = pytest.mark.django_db

ME = "/api/auth/me"
LOGOUT = "/api/auth/logout"


def _stream(client: Client, token: str):
    # Only the token check matters here: an invalid body still proves the token passed.
    # The stream view reads tokens on its own database threads, so tests calling it need
    # committed rows: django_db(transaction=True).
    return client.post(
        "/api/chat/stream",
        data=b"{not json",
        content_type="application/json",
        headers=bearer(token),
    )


def test_me_shows_the_callers_own_profile(client, owner, owner_token):
    response = client.get(ME, headers=bearer(owner_token))

    assert response.status_code == 200
    body = response.json()
    assert parse_datetime(body.pop("created_at")) == owner.date_joined
    assert body == {
        "id": owner.pk,
        "openid": "owner-openid",
        "unionid": "",
        "nickname": "Alice",
        "avatar_url": "",
    }


def test_me_can_change_nickname_and_avatar(client, owner, owner_token):
    avatar = "https://thirdwx.qlogo.cn/mmopen/abc/132"

    response = client.patch(
        ME, data={"nickname": " 小明 ", "avatar_url": avatar},
        content_type="application/json", headers=bearer(owner_token),
    )  # fmt: skip

    assert response.status_code == 200
    assert (response.json()["nickname"], response.json()["avatar_url"]) == ("小明", avatar)
    owner.refresh_from_db()
    assert (owner.nickname, owner.avatar_url) == ("小明", avatar)
    cleared = client.patch(
        ME, data={"avatar_url": ""}, content_type="application/json", headers=bearer(owner_token)
    )
    assert cleared.json()["avatar_url"] == ""
    assert cleared.json()["nickname"] == "小明"  # fields not sent stay as they were


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nickname": "x" * 65}, "nickname"),
        ({"nickname": 12}, "nickname"),  # text only: not saved as "12"
        ({"avatar_url": "not a url"}, "avatar_url"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"avatar_url": "ftp://example.com/a.png"}, "avatar_url"),
        ({"avatar_url": "https://example.com/" + "a" * 500}, "avatar_url"),
    ],
)
def test_me_refuses_bad_profile_fields(client, owner, owner_token, body, field):
    response = client.patch(
        ME, data=body, content_type="application/json", headers=bearer(owner_token)
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert field in response.json()["error"]["fields"]
    owner.refresh_from_db()
    assert owner.nickname == "Alice"


def test_me_needs_a_token(client):
    for response in (client.get(ME), client.patch(ME, data={}, content_type="application/json")):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db(transaction=True)
def test_an_expired_token_is_refused_everywhere(client, owner, owner_token):
    assert _stream(client, owner_token).status_code == 400  # the token works before
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    for response in (client.get(ME, headers=bearer(owner_token)), _stream(client, owner_token)):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"


def test_a_token_expires_after_its_ttl(owner, settings):
    settings.CHAT_TOKEN_TTL_SECONDS = 3600
    before = timezone.now()

    issued = token_issue(user=owner)

    expected = before + timedelta(seconds=3600)
    assert expected <= issued.expires_at <= expected + timedelta(seconds=5)


@pytest.mark.django_db(transaction=True)
def test_logout_revokes_that_token_only(client, owner, owner_token):
    second = token_issue(user=owner).token
    assert _stream(client, owner_token).status_code == 400  # the token works before

    response = client.post(LOGOUT, headers=bearer(owner_token))

    assert response.status_code == 204
    assert response.content == b""
    for after in (client.get(ME, headers=bearer(owner_token)), _stream(client, owner_token)):
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "invalid_token"
    assert client.get(ME, headers=bearer(second)).status_code == 200


def test_logout_is_idempotent(client, owner, owner_token):
    assert client.post(LOGOUT, headers=bearer(owner_token)).status_code == 204

    again = client.post(LOGOUT, headers=bearer(owner_token))

    assert again.status_code == 204
    assert AccessToken.objects.get().revoked_at is not None


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "not_authenticated"), (bearer("forged:token"), "invalid_token")],
)
def test_logout_without_a_real_token_is_a_401(client, headers, code):
    response = client.post(LOGOUT, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_dev_login_token_is_the_same_kind_and_a_disabled_user_gets_none(client, owner):
    token = client.post(
        "/api/auth/dev/login", data={"openid": "owner-openid"}, content_type="application/json"
    ).json()["token"]
    assert client.get(ME, headers=bearer(token)).json()["id"] == owner.pk
    owner.is_active = False
    owner.save()

    response = client.post(
        "/api/auth/dev/login", data={"openid": "owner-openid"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_disabled"


@pytest.mark.parametrize(
    "path",
    ["/api/auth/me/", "/api/auth/logout/", "/api/auth/wechat/login/", "/api/auth/webview-ticket/"],
)
def test_the_other_slash_form_is_a_json_404_with_a_hint(client, path):
    response = client.post(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert f"Did you mean {path.rstrip('/')}?" in response.json()["error"]["message"]
