import pytest
from django.test import Client, override_settings

from accounts.models import User

pytestmark = pytest.mark.django_db

URL = "/api/auth/dev/login"


def _login(client: Client, body: dict):
    return client.post(URL, data=body, content_type="application/json")


def test_dev_login_creates_the_user_and_returns_a_working_token(client):
    response = _login(client, {"openid": "o-new_user1"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"token", "expires_at", "created"}
    user = User.objects.get(openid="o-new_user1")
    assert not user.has_usable_password()
    again = _login(client, {"openid": "o-new_user1"})
    assert again.status_code == 200
    assert again.json()["token"] != body["token"]
    assert User.objects.filter(openid="o-new_user1").count() == 1


@pytest.mark.parametrize(
    "body", [{}, {"openid": ""}, {"openid": "has space"}, {"openid": "x" * 65}, {"openid": 12}]
)
def test_dev_login_refuses_a_bad_openid(client, body):
    response = _login(client, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert "openid" in response.json()["error"]["fields"]


def test_dev_login_is_off_without_the_flag(client):
    with override_settings(CHAT_DEV_LOGIN=False):
        response = _login(client, {"openid": "someone"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not User.objects.filter(openid="someone").exists()


def test_dev_login_malformed_json_and_wrong_method(client):
    bad = client.post(URL, data=b"{oops", content_type="application/json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "malformed_json"
    get = client.get(URL)
    assert get.status_code == 405
    assert get.json()["error"]["code"] == "method_not_allowed"
