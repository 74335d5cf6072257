"""Logging out ends every way in (tokens and the web-view tickets they asked for); dead
tokens are purged; live ones are capped per user."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken, WebviewTicket
from accounts.tokens import token_issue
from tests.support.servers import bearer

pytestmark = pytest.mark.django_db

TICKET = "/api/auth/webview-ticket"
EXCHANGE = "/api/auth/webview-ticket/exchange"


def _ticket(client: Client, token: str) -> str:
    response = client.post(TICKET, headers=bearer(token))
    assert response.status_code == 201
    return response.json()["ticket"]


def _exchange(client: Client, ticket: str):
    return client.post(EXCHANGE, {"ticket": ticket}, content_type="application/json")


def test_logout_voids_the_tickets_its_token_asked_for(client: Client, owner):
    mini_program = token_issue(user=owner).token
    other_device = token_issue(user=owner).token
    voided = _ticket(client, mini_program)
    kept = _ticket(client, other_device)

    assert client.post("/api/auth/logout", headers=bearer(mini_program)).status_code == 204

    refused = _exchange(client, voided)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_ticket"
    assert _exchange(client, kept).status_code == 200  # another client's login stays


def test_logout_everywhere_ends_every_token_and_ticket(client: Client, owner, other):
    tokens = [token_issue(user=owner).token for _ in range(3)]
    expired = token_issue(user=owner).token  # already dead: not counted as revoked
    AccessToken.objects.filter(key_id=expired.split(":")[0]).update(expires_at=timezone.now())
    others = token_issue(user=other).token
    ticket = _ticket(client, tokens[1])

    response = client.post("/api/auth/logout/everywhere", headers=bearer(tokens[0]))

    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    for token in tokens:
        assert client.get("/api/auth/me", headers=bearer(token)).status_code == 401
    assert _exchange(client, ticket).status_code == 401
    assert client.get("/api/auth/me", headers=bearer(others)).status_code == 200


def test_logout_everywhere_needs_a_live_token(client: Client):
    assert client.post("/api/auth/logout/everywhere").status_code == 401


def test_the_purge_removes_only_expired_and_revoked_tokens(client: Client, owner):
    now = timezone.now()
    live = token_issue(user=owner).token
    live_ticket = _ticket(client, live)
    expired = token_issue(user=owner).token
    revoked = token_issue(user=owner).token
    _ticket(client, revoked)
    used_ticket = _ticket(client, live)
    assert _exchange(client, used_ticket).status_code == 200  # a fourth token, live
    AccessToken.objects.filter(key_id=expired.split(":")[0]).update(expires_at=now)
    client.post("/api/auth/logout", headers=bearer(revoked))

    call_command("purge_tokens")

    assert AccessToken.objects.count() == 2
    assert client.get("/api/auth/me", headers=bearer(live)).status_code == 200
    assert list(WebviewTicket.objects.values_list("used_at", flat=True)) == [None]
    assert _exchange(client, live_ticket).status_code == 200


def test_live_tokens_are_capped_per_user_oldest_revoked_first(client: Client, owner, settings):
    settings.CHAT_TOKENS_PER_USER_MAX = 3
    issued = []
    for minutes_ago in (50, 40, 30, 20, 10):
        issued.append(token_issue(user=owner).token)
        AccessToken.objects.filter(key_id=issued[-1].split(":")[0]).update(
            created_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
    issued.append(token_issue(user=owner).token)

    working = [client.get("/api/auth/me", headers=bearer(t)).status_code == 200 for t in issued]
    assert working == [False, False, False, True, True, True]
