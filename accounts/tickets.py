"""Web-view tickets: how an H5 page inside the mini-program logs in without an openid in a URL.

The mini-program (already logged in) asks for a ticket and opens the page with
`?ticket=...`; the page exchanges it once for its own bearer token. A ticket that leaks
through a URL (history, Referer, logs) is worthless after a minute, after its first use,
or once the token that asked for it is logged out.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import AccessToken, WebviewTicket
from accounts.tokens import IssuedToken, token_issue

_TICKET_BYTES = 32  # 256 random bits, URL-safe base64


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    expires_at: datetime


class InvalidTicket(Exception):
    """The ticket is unknown, expired or already used (deliberately indistinguishable)."""


def _digest(ticket: str) -> str:
    # A plain hash suffices: the ticket is long and random, so there is nothing to brute-force.
    return hashlib.sha256(ticket.encode()).hexdigest()


def ticket_issue(*, token: AccessToken) -> IssuedTicket:
    """A ticket for the token's user, bound to that token (logging it out voids the ticket)."""
    now = timezone.now()
    ticket = secrets.token_urlsafe(_TICKET_BYTES)
    expires_at = now + timedelta(seconds=settings.CHAT_WEBVIEW_TICKET_TTL_SECONDS)
    # The user's dead tickets go on the way: the table stays small without a cleanup job.
    WebviewTicket.objects.filter(user_id=token.user_id, expires_at__lte=now).delete()
    WebviewTicket.objects.create(
        digest=_digest(ticket),
        user_id=token.user_id,
        token=token,
        created_at=now,
        expires_at=expires_at,
    )
    return IssuedTicket(ticket=ticket, expires_at=expires_at)


def ticket_exchange(*, ticket: str) -> IssuedToken:
    """A new bearer token for the ticket's user; the ticket is spent by the first caller."""
    digest = _digest(ticket)
    now = timezone.now()
    with transaction.atomic():
        # The conditional UPDATE is the single-use guarantee: the database lets exactly one
        # of two concurrent exchanges change the row; the other sees 0 rows updated.
        spent = WebviewTicket.objects.filter(
            digest=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if spent != 1:
            raise InvalidTicket
        spent_ticket = WebviewTicket.objects.select_related("user", "token").get(digest=digest)
        user, asked_by = spent_ticket.user, spent_ticket.token
        # The client that asked for it has not logged out since (nor the user been disabled).
        if not user.is_active or asked_by.revoked_at is not None or asked_by.expires_at <= now:
            raise InvalidTicket
        return token_issue(user=user)


def tickets_purge(*, now: datetime | None = None) -> int:
    """Delete used and expired tickets; how many."""
    now = now or timezone.now()
    dead = WebviewTicket.objects.filter(Q(used_at__isnull=False) | Q(expires_at__lte=now))
    _, deleted = dead.delete()
    return deleted.get(WebviewTicket._meta.label, 0)
