"""The admin offers no form that cannot work: chats and tokens are made by the API only."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

MADE_BY_THE_API = [
    "chat.chatrecord",
    "chat.chatsession",
    "accounts.accesstoken",
    "accounts.webviewticket",
]


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.mark.parametrize("label", MADE_BY_THE_API)
def test_no_add_form_for_what_the_api_makes(staff_client: Client, label: str):
    app_label, model_name = label.split(".")
    changelist = staff_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    add = staff_client.get(reverse(f"admin:{app_label}_{model_name}_add"))

    assert changelist.status_code == 200
    assert f"/{app_label}/{model_name}/add/" not in changelist.content.decode()
    assert add.status_code == 403


def test_every_add_form_the_admin_offers_opens(staff_client: Client):
    """Whatever keeps an add form (users, groups) at least renders it."""
    for model in admin.site._registry:
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        if label in MADE_BY_THE_API:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        assert staff_client.get(url).status_code == 200, label


def test_a_session_page_offers_no_inline_record_to_add(staff_client: Client, owner):
    from chat.models import ChatSession

    session = ChatSession.objects.create(owner=owner, title="t")
    page = staff_client.get(reverse("admin:chat_chatsession_change", args=[session.pk]))

    assert page.status_code == 200
    assert "records-__prefix__" not in page.content.decode()  # the inline's empty form
