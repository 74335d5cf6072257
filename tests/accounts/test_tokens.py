from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccessToken
from accounts.tokens import InvalidToken, token_issue, token_revoke, token_user

pytestmark = pytest.mark.django_db


def test_a_fresh_token_names_its_user_and_marks_them_seen(owner):
    issued = token_issue(user=owner)

    assert token_user(issued.token) == owner
    owner.refresh_from_db()
    assert owner.last_seen_at is not None


@pytest.mark.parametrize("token", ["", "garbage", "abc:def", "a" * 500])
def test_forged_tokens_are_refused(token):
    with pytest.raises(InvalidToken):
        token_user(token)


def test_an_expired_token_is_refused(owner):
    issued = token_issue(user=owner)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(InvalidToken):
        token_user(issued.token)


def test_a_revoked_token_is_refused_and_others_keep_working(owner):
    first, second = token_issue(user=owner), token_issue(user=owner)

    token_revoke(token=first.token)

    with pytest.raises(InvalidToken):
        token_user(first.token)
    assert token_user(second.token) == owner


def test_a_disabled_user_cannot_use_their_token(owner):
    issued = token_issue(user=owner)
    owner.is_active = False
    owner.save()

    with pytest.raises(InvalidToken):
        token_user(issued.token)
