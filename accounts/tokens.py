"""Bearer tokens: signed (forgeries fail without a query), expiring, revocable per token
or all at once, at most `CHAT_TOKENS_PER_USER_MAX` live per user, purged once dead."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import AccessToken, User
from chatproject.db import fixed_statement_cursor

_SIGNER_SALT = "accounts.access-token"
_LAST_SEEN_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class InvalidToken(Exception):
    """The token is malformed, forged, expired or revoked."""


def token_issue(*, user: User, ttl_seconds: int | None = None) -> IssuedToken:
    """A new token for `user`; past the per-user cap, their oldest live tokens are revoked."""
    ttl = ttl_seconds if ttl_seconds is not None else settings.CHAT_TOKEN_TTL_SECONDS
    key_id = secrets.token_hex(16)
    now = timezone.now()
    expires_at = now + timedelta(seconds=ttl)
    with transaction.atomic():
        AccessToken.objects.create(key_id=key_id, user=user, created_at=now, expires_at=expires_at)
        _tokens_over_cap_revoke(user=user, now=now)
    return IssuedToken(token=signing.Signer(salt=_SIGNER_SALT).sign(key_id), expires_at=expires_at)


def _live_tokens(*, user: User, now: datetime) -> QuerySet[AccessToken]:
    return AccessToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now)


def _tokens_over_cap_revoke(*, user: User, now: datetime) -> None:
    # Every login and every web-view page opened mints a token: without a cap a user's
    # live tokens only ever grow. A client whose token goes this way logs in again (401).
    over_cap = _live_tokens(user=user, now=now).order_by("-created_at", "-id")[
        settings.CHAT_TOKENS_PER_USER_MAX :
    ]
    AccessToken.objects.filter(pk__in=list(over_cap.values_list("pk", flat=True))).update(
        revoked_at=now
    )


def token_key_id(token: str) -> str:
    """The key id inside a token whose signature holds; no database needed."""
    try:
        return signing.Signer(salt=_SIGNER_SALT).unsign(token)
    except signing.BadSignature:
        raise InvalidToken("bad signature") from None


def token_access(token: str) -> AccessToken:
    """The live token row, with its active user: a signature check, then one query."""
    key_id = token_key_id(token)
    try:
        access = AccessToken.objects.select_related("user").get(
            key_id=key_id, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
    except AccessToken.DoesNotExist:
        raise InvalidToken("expired or revoked") from None
    if not access.user.is_active:
        raise InvalidToken("user disabled")
    _user_touch(access.user)
    return access


def token_user(token: str) -> User:
    """The active user a token belongs to."""
    return token_access(token).user


# The stream endpoints need only the owner's id and own limits, once per answer: one fixed
# statement instead of the ORM's join into two model instances (~4x less CPU, bench/ #6).
_OWNER_QUERY = (
    f"SELECT u.id, u.is_active, (u.last_seen_at IS NULL OR u.last_seen_at < %s),"
    " u.limit_concurrent_streams, u.limit_questions_per_minute, u.limit_questions_per_day,"
    " u.limit_answer_tokens_per_day"
    f" FROM {AccessToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id"
    " WHERE t.key_id = %s AND t.revoked_at IS NULL AND t.expires_at > %s"
)


@dataclass(frozen=True)
class TokenOwner:
    """The active user behind a token, as the stream endpoints need them."""

    id: int
    # Their own limits (None: the setting's), in chat.limits.UserLimits' order.
    own_limits: tuple[int | None, int | None, int | None, int | None]


def token_owner(token: str) -> TokenOwner:
    """The active user a token belongs to (one query); same checks as `token_user`."""
    key_id = token_key_id(token)
    now = timezone.now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    db_stale = connection.ops.adapt_datetimefield_value(now - _LAST_SEEN_RESOLUTION)
    with fixed_statement_cursor() as cursor:
        cursor.execute(_OWNER_QUERY, [db_stale, key_id, db_now])
        row = cursor.fetchone()
    if row is None:
        raise InvalidToken("expired or revoked")
    user_id, is_active, seen_long_ago, *own_limits = row
    if not is_active:
        raise InvalidToken("user disabled")
    if seen_long_ago:
        User.objects.filter(pk=user_id).update(last_seen_at=now)
    return TokenOwner(id=user_id, own_limits=tuple(own_limits))


def _user_touch(user: User) -> None:
    # At most one write per user every few minutes, not one per request.
    now = timezone.now()
    if user.last_seen_at is None or now - user.last_seen_at > _LAST_SEEN_RESOLUTION:
        user.last_seen_at = now
        User.objects.filter(pk=user.pk).update(last_seen_at=now)


def token_revoke(*, token: str) -> None:
    """Log out one client: its token, and the web-view tickets it minted, stop working
    (a ticket lives only as long as its token; accounts/tickets.py)."""
    AccessToken.objects.filter(key_id=token_key_id(token), revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def tokens_revoke_all(*, user: User) -> int:
    """Log out everywhere: every live token of the user (and so every ticket); how many."""
    now = timezone.now()
    return _live_tokens(user=user, now=now).update(revoked_at=now)


def tokens_purge(*, now: datetime | None = None) -> int:
    """Delete expired and revoked tokens (their tickets go with them); how many."""
    now = now or timezone.now()
    dead = AccessToken.objects.filter(Q(expires_at__lte=now) | Q(revoked_at__isnull=False))
    _, deleted = dead.delete()
    return deleted.get(AccessToken._meta.label, 0)
