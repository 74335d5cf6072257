from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccessToken
from accounts.tokens import InvalidToken, token_issue, token_owner, token_revoke, token_user

pytestmark = pytest.mark.django_db


def _user_id_by_model(token: str) -> int:
    return token_user(token).pk


def _user_id_by_sql(token: str) -> int:
    return token_owner(token).id


# The same checks through both doors: the model lookup (DRF) and the stream endpoints'
# lean SQL lookup.
lookups = pytest.mark.parametrize(
    "owner_of", [_user_id_by_model, _user_id_by_sql], ids=["token_user", "token_owner"]
)


@lookups
def test_a_fresh_token_names_its_user_and_marks_them_seen(owner, owner_of):
    issued = token_issue(user=owner)

    assert owner_of(issued.token) == owner.pk
    owner.refresh_from_db()
    assert owner.last_seen_at is not None


@lookups
def test_last_seen_is_written_at_most_every_few_minutes(owner, owner_of):
    issued = token_issue(user=owner)
    recently = timezone.now() - timedelta(minutes=1)
    long_ago = timezone.now() - timedelta(minutes=10)

    type(owner).objects.filter(pk=owner.pk).update(last_seen_at=recently)
    owner_of(issued.token)
    owner.refresh_from_db()
    assert owner.last_seen_at == recently

    type(owner).objects.filter(pk=owner.pk).update(last_seen_at=long_ago)
    owner_of(issued.token)
    owner.refresh_from_db()
    assert owner.last_seen_at > recently


@lookups
@pytest.mark.parametrize("token", ["", "garbage", "abc:def", "a" * 500])
def test_forged_tokens_are_refused(token, owner_of):
    with pytest.raises(InvalidToken):
        owner_of(token)


@lookups
def test_an_expired_token_is_refused(owner, owner_of):
    issued = token_issue(user=owner)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(InvalidToken):
        owner_of(issued.token)


@lookups
def test_a_token_about_to_expire_still_works(owner, owner_of):
    issued = token_issue(user=owner)
    AccessToken.objects.update(expires_at=timezone.now() + timedelta(seconds=30))

    assert owner_of(issued.token) == owner.pk


@lookups
def test_a_revoked_token_is_refused_and_others_keep_working(owner, owner_of):
    first, second = token_issue(user=owner), token_issue(user=owner)

    token_revoke(token=first.token)

    with pytest.raises(InvalidToken):
        owner_of(first.token)
    assert owner_of(second.token) == owner.pk


@lookups
def test_a_disabled_user_cannot_use_their_token(owner, owner_of):
    issued = token_issue(user=owner)
    owner.is_active = False
    owner.save()

    with pytest.raises(InvalidToken):
        owner_of(issued.token)
