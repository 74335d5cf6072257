"""Who reaches moderation: moderators view and moderate but edit nothing; staff without the
rights are refused; accounts that are not staff never get past the admin's login."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts.models import User
from chat.models import ChatRecord, ChatSession
from chat.moderation import MODERATOR_GROUP

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(owner) -> ChatRecord:
    session = ChatSession.objects.create(owner=owner, title="t")
    return ChatRecord.objects.create(
        session=session, owner=owner, question="问", answer="答", status="done"
    )


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def moderator() -> User:
    user = User.objects.create_user(username="mod", password="mod-password-123", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATOR_GROUP))
    return user


def _pages(record: ChatRecord) -> dict[str, str]:
    return {
        "records": reverse("admin:chat_chatrecord_changelist"),
        "queue": reverse("admin:chat_chatrecord_changelist") + "?moderation=queue",
        "record": reverse("admin:chat_chatrecord_change", args=[record.pk]),
        "export": reverse("admin:chat_chatrecord_export"),
        "dashboard": reverse("chat-dashboard"),
    }


def _moderate(client: Client, record: ChatRecord):
    url = reverse("admin:chat_chatrecord_moderate", args=[record.pk])
    return client.post(url, {"moderation": "hidden", "note": "spam"})


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_an_account_that_is_not_staff_is_sent_to_the_login_everywhere(who, owner, record):
    client = _client(None if who == "anonymous" else owner)

    answers = {name: client.get(url) for name, url in _pages(record).items()}
    moderated = _moderate(client, record)

    for name, response in [*answers.items(), ("moderate", moderated)]:
        assert response.status_code == 302, name
        assert response["Location"].startswith("/admin/login/"), name
    record.refresh_from_db()
    assert not record.is_hidden


def test_staff_without_the_rights_are_refused(record):
    clerk = User.objects.create_user(username="clerk", password="clerk-pass-123", is_staff=True)
    client = _client(clerk)

    for name, url in _pages(record).items():
        assert client.get(url).status_code == 403, name
    assert _moderate(client, record).status_code == 403
    record.refresh_from_db()
    assert not record.is_hidden


def test_a_moderator_reads_everything_and_moderates(moderator, record):
    client = _client(moderator)

    for name, url in _pages(record).items():
        assert client.get(url).status_code == 200, name
    moderated = _moderate(client, record)

    assert moderated.status_code == 302
    record.refresh_from_db()
    assert record.is_hidden
    assert record.moderation_events.get().by == moderator


def test_a_moderator_edits_and_deletes_nothing(moderator, record, owner):
    client = _client(moderator)
    change = reverse("admin:chat_chatrecord_change", args=[record.pk])
    page = client.get(change).text
    listing = client.get(reverse("admin:chat_chatrecord_changelist")).text

    edit = client.post(change, {"rating": "useful", "rating_reason": "", "question_type": ""})
    delete = client.post(reverse("admin:chat_chatrecord_delete", args=[record.pk]), {"post": "1"})
    bulk_delete = client.post(
        reverse("admin:chat_chatrecord_changelist"),
        {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
    )
    user_edit = client.post(
        reverse("admin:accounts_user_change", args=[owner.pk]),
        {"username": owner.username, "nickname": "改名", "is_staff": "on"},
    )

    assert 'name="_save"' not in page
    assert 'name="rating"' not in page
    assert "records_hidden" in listing
    assert "delete_selected" not in listing
    assert (edit.status_code, delete.status_code, user_edit.status_code) == (403, 403, 403)
    assert bulk_delete.status_code == 302  # back to the list: "no action selected"
    assert ChatRecord.objects.filter(pk=record.pk).exists()
    record.refresh_from_db()
    owner.refresh_from_db()
    assert record.rating == "none"
    assert (owner.nickname, owner.is_staff) == ("Alice", False)
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 403


def test_a_superuser_keeps_every_right(staff, record):
    client = _client(staff)

    edit = client.post(
        reverse("admin:chat_chatrecord_change", args=[record.pk]),
        {"rating": "useful", "rating_reason": "", "question_type": ""},
    )

    assert edit.status_code == 302
    assert _moderate(client, record).status_code == 302
    record.refresh_from_db()
    assert (record.rating, record.is_hidden) == ("useful", True)
