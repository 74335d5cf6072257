"""Web-view tickets: short-lived, single-use, stored hashed, exchanged for a token."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import AccessToken, User, WebviewTicket
from accounts.tickets import InvalidTicket, ticket_exchange, ticket_issue
from accounts.tokens import token_access, token_issue
from tests.support.servers import bearer

pytestmark = pytest.mark.django_db

ISSUE = "/api/auth/webview-ticket"
EXCHANGE = "/api/auth/webview-ticket/exchange"


def _ticket_for(user: User) -> str:
    """A ticket minted as the API mints it: for one of the user's tokens."""
    return ticket_issue(token=token_access(token_issue(user=user).token)).ticket


def _issue(client: Client, token: str):
    return client.post(ISSUE, headers=bearer(token))


def _exchange(client: Client, ticket: str):
    return client.post(EXCHANGE, data={"ticket": ticket}, content_type="application/json")


def _assert_invalid_ticket(response) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_ticket"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_ticket_opens_the_page_as_the_same_user(client, owner, owner_token, settings):
    settings.CHAT_WEBVIEW_TICKET_TTL_SECONDS = 60
    issued = _issue(client, owner_token)

    assert issued.status_code == 201
    body = issued.json()
    assert set(body) == {"ticket", "expires_at"}
    assert len(body["ticket"]) >= 43  # >= 256 bits, URL-safe
    assert "owner-openid" not in body["ticket"]
    lifetime = parse_datetime(body["expires_at"]) - timezone.now()
    assert timedelta(seconds=55) < lifetime <= timedelta(seconds=60)

    exchanged = _exchange(client, body["ticket"])

    assert exchanged.status_code == 200
    assert set(exchanged.json()) == {"token", "expires_at"}
    token = exchanged.json()["token"]
    assert token != owner_token
    me = client.get("/api/auth/me", headers=bearer(token))
    assert me.json()["id"] == owner.pk


def test_only_a_hash_of_the_ticket_is_stored(client, owner_token):
    ticket = _issue(client, owner_token).json()["ticket"]

    row = WebviewTicket.objects.get()
    assert ticket not in row.digest
    assert all(ticket not in str(value) for value in WebviewTicket.objects.values().get().values())


def test_a_ticket_works_once(client, owner_token):
    ticket = _issue(client, owner_token).json()["ticket"]
    assert _exchange(client, ticket).status_code == 200

    _assert_invalid_ticket(_exchange(client, ticket))
    assert AccessToken.objects.count() == 2  # the owner's own, and one from the exchange


def test_an_expired_ticket_is_refused(client, owner_token):
    ticket = _issue(client, owner_token).json()["ticket"]
    WebviewTicket.objects.update(expires_at=timezone.now() - timedelta(milliseconds=1))

    _assert_invalid_ticket(_exchange(client, ticket))
    assert WebviewTicket.objects.get().used_at is None


def test_an_unknown_ticket_is_refused_the_same_way(client):
    _assert_invalid_ticket(_exchange(client, "A" * 43))


def test_a_disabled_users_ticket_is_refused(client, owner, owner_token):
    ticket = _issue(client, owner_token).json()["ticket"]
    owner.is_active = False
    owner.save()

    _assert_invalid_ticket(_exchange(client, ticket))


@pytest.mark.parametrize("body", [{}, {"ticket": ""}, {"ticket": "x" * 129}])
def test_a_missing_ticket_is_bad_input(client, body):
    response = client.post(EXCHANGE, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_asking_for_a_ticket_needs_a_valid_token(client):
    assert client.post(ISSUE).json()["error"]["code"] == "not_authenticated"
    refused = client.post(ISSUE, headers=bearer("forged:token"))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"
    assert not WebviewTicket.objects.exists()


def test_issuing_clears_the_users_dead_tickets(owner, other):
    _ticket_for(owner)
    _ticket_for(other)
    WebviewTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    _ticket_for(owner)

    assert WebviewTicket.objects.filter(user=owner).count() == 1
    assert WebviewTicket.objects.filter(user=other).count() == 1  # not owner's to clear


@pytest.mark.django_db(transaction=True)
def test_concurrent_exchanges_of_one_ticket_have_one_winner(owner):
    ticket = _ticket_for(owner)
    racers = 6
    start = threading.Barrier(racers)

    def race(_: int) -> bool:
        try:
            start.wait()
            ticket_exchange(ticket=ticket)
        except InvalidTicket:
            return False
        finally:
            connection.close()  # each thread has its own connection
        return True

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(race, range(racers)))

    assert results.count(True) == 1
    assert AccessToken.objects.count() == 2  # the asking token, and the winner's
