"""No one reads another user's chats: every chat endpoint × owner / other / anonymous / staff.

A stranger's id gets a 404 (never a 403 that would confirm it exists), lists and searches
simply leave other users' chats out, and staff see other users' chats only through the
admin. Every path under /api/chat/ must have a row in `ENDPOINTS`
(`test_every_chat_endpoint_is_in_the_matrix` fails until it does); give each method that
reads or changes an object by id its own row.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.test import AsyncClient, Client
from django.urls import URLResolver, get_resolver, reverse

from accounts.models import User
from accounts.tokens import token_issue
from chat.models import ChatRecord, ChatSession
from tests.support.sse import read_streaming_response

SECRET = "秘密"  # in the owner's session title and question: must never reach anyone else


@dataclass(frozen=True)
class Owned:
    """The owner's chat objects the requests point at."""

    session: ChatSession
    record: ChatRecord


def _session(o: Owned) -> dict:
    return {"session_id": o.session.pk}


def _record(o: Owned) -> dict:
    return {"record_id": o.record.pk}


@dataclass(frozen=True)
class Endpoint:
    url_name: str
    method: str
    url_kwargs: Callable[[Owned], dict] = lambda o: {}
    body: Callable[[Owned], dict] | None = None
    query: dict = field(default_factory=dict)
    # The 404 code a stranger (or staff) gets. Empty: the endpoint answers 2xx, leaving the
    # owner's chats out (lists, search, the per-item results of a bulk save).
    not_found: str = ""
    # The stranger's 2xx answer must name this (e.g. a per-item error code).
    stranger_sees: str = ""
    reads: bool = False  # the owner's answer shows their chat (SECRET)
    streams: bool = False  # the owner's answer is a complete event stream
    label: str = ""

    @property
    def id(self) -> str:
        return self.label or f"{self.method}-{self.url_name}"


ENDPOINTS = [
    # The stream pipeline (chat/urls.py).
    Endpoint(
        "chat-stream", "post", body=lambda o: {"question": "继续", **_session(o)},
        not_found="session_not_found", streams=True,
    ),
    Endpoint("record-events", "get", _record, not_found="record_not_found"),
    Endpoint("record-stop", "post", _record, not_found="record_not_found"),
    # The history API (chat/api_urls.py).
    Endpoint("chat-sessions", "get", reads=True),
    Endpoint("chat-session", "get", _session, not_found="session_not_found", reads=True),
    Endpoint(
        "chat-session", "patch", _session, body=lambda o: {"title": "renamed"},
        not_found="session_not_found",
    ),
    Endpoint("chat-session", "delete", _session, not_found="session_not_found"),
    Endpoint("chat-session-records", "get", _session, not_found="session_not_found", reads=True),
    Endpoint("chat-record", "get", _record, not_found="record_not_found", reads=True),
    Endpoint(
        "chat-record-rating", "post", _record, body=lambda o: {"rating": "useful"},
        not_found="record_not_found",
    ),
    Endpoint("chat-search", "get", query={"q": SECRET}, reads=True),
    Endpoint(
        "chat-records-bulk", "post",
        body=lambda o: {"items": [{"record_id": o.record.pk, "answer": "overwritten"}]},
        stranger_sees="record_not_found", label="post-chat-records-bulk-over-a-record",
    ),
    Endpoint(
        "chat-records-bulk", "post",
        body=lambda o: {**_session(o), "items": [{"client_id": "m-1", "question": "塞进去"}]},
        not_found="session_not_found", label="post-chat-records-bulk-into-a-session",
    ),
]  # fmt: skip


def _chat_url_names() -> set[str | None]:
    """The name of every URL pattern under /api/chat/, wherever it is included from."""

    def walk(patterns: list, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif route.startswith("api/chat/"):
                yield pattern.name

    return set(walk(get_resolver().url_patterns, ""))


def test_every_chat_endpoint_is_in_the_matrix():
    assert _chat_url_names() <= {endpoint.url_name for endpoint in ENDPOINTS}


# --- The matrix ---------------------------------------------------------------------------


@pytest.fixture
def owned(owner: User) -> Owned:
    session = ChatSession.objects.create(owner=owner, title=f"{SECRET}会话")
    record = ChatRecord.objects.create(
        session=session, owner=owner, question=f"{SECRET}问题", answer="只给我看", status="done"
    )
    return Owned(session=session, record=record)


@pytest.fixture
def offline_model(settings) -> None:
    settings.LLM_MODELS = None
    settings.LLM_API_KEY = ""
    settings.CHAT_OFFLINE_TOKENS_PER_SECOND = 5000


@pytest.fixture
def endpoint(request) -> Endpoint:
    endpoint: Endpoint = request.param
    # Rows may land before their endpoint does (work in parallel): skip those until then.
    if endpoint.url_name not in _chat_url_names():
        pytest.skip(f"{endpoint.url_name} is not served by this build")
    return endpoint


ROWS = [pytest.param(endpoint, id=endpoint.id) for endpoint in ENDPOINTS]


@sync_to_async
def _snapshot() -> list:
    return [list(ChatSession.objects.values()), list(ChatRecord.objects.values())]


async def _call(endpoint: Endpoint, owned: Owned, token: str | None):
    path = reverse(endpoint.url_name, kwargs=endpoint.url_kwargs(owned))
    kwargs: dict = {"headers": {"Authorization": f"Bearer {token}"} if token else {}}
    if endpoint.body is not None:
        kwargs |= {"data": json.dumps(endpoint.body(owned)), "content_type": "application/json"}
    elif endpoint.query:
        kwargs["data"] = endpoint.query
    return await getattr(AsyncClient(), endpoint.method)(path, **kwargs)


def _text(response) -> str:
    """The answer as text, JSON with CJK unescaped (so SECRET is found however it is sent)."""
    if response.streaming or not response.content:
        return ""
    return json.dumps(response.json(), ensure_ascii=False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline_model")
@pytest.mark.parametrize("endpoint", ROWS, indirect=True)
async def test_the_owner_reaches_their_own_chats(endpoint, owned, owner_token):
    response = await _call(endpoint, owned, owner_token)

    if endpoint.streams:
        assert response.status_code == 200
        transcript = await read_streaming_response(response)
        assert transcript.done["status"] == "done"
        assert transcript.start["session_id"] == owned.session.pk
        assert transcript.saw_done_marker
        return
    if response.streaming:
        await read_streaming_response(response)
    # Past the ownership check: whatever the endpoint says next, it is not "who are you"
    # or "no such thing".
    assert response.status_code not in (401, 403, 404), _text(response)
    if endpoint.reads:
        assert SECRET in _text(response)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", ROWS, indirect=True)
@pytest.mark.parametrize("who", ["other", "staff"])
async def test_anyone_else_learns_nothing_and_changes_nothing(endpoint, owned, who, other, staff):
    caller = {"other": other, "staff": staff}[who]
    token = (await sync_to_async(token_issue)(user=caller)).token
    before = await _snapshot()

    response = await _call(endpoint, owned, token)

    if endpoint.not_found:
        assert response.status_code == 404
        assert response.json()["error"]["code"] == endpoint.not_found
    else:
        assert 200 <= response.status_code < 300
        assert endpoint.stranger_sees in _text(response)
    assert SECRET not in _text(response)
    assert await _snapshot() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", ROWS, indirect=True)
async def test_anonymous_callers_must_log_in(endpoint, owned):
    before = await _snapshot()

    response = await _call(endpoint, owned, None)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert await _snapshot() == before


# --- Staff: through the admin, and only there ---------------------------------------------


def _record_change_page(record: ChatRecord) -> str:
    return f"/admin/chat/chatrecord/{record.pk}/change/"


@pytest.mark.django_db
def test_staff_open_any_users_record_in_the_admin(client: Client, staff, owned):
    client.force_login(staff)

    response = client.get(_record_change_page(owned.record))

    assert response.status_code == 200
    assert "只给我看" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["owner", "anonymous"])
def test_non_staff_are_sent_to_the_admin_login(client: Client, owner, owned, who):
    if who == "owner":
        client.force_login(owner)  # even for their own record

    response = client.get(_record_change_page(owned.record))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_the_admin_never_shows_the_wechat_session_key(client: Client, staff, owner):
    owner.wechat_session_key = "c2Vzc2lvbi1rZXktb2YtYWxpY2U="
    owner.save()
    client.force_login(staff)

    response = client.get(f"/admin/accounts/user/{owner.pk}/change/")

    assert response.status_code == 200
    assert owner.wechat_session_key not in response.content.decode()


@pytest.mark.django_db
def test_staff_typing_an_avatar_address_without_a_scheme_saves_it_as_https(rf, staff, owner):
    # WeChat serves avatars over https; the admin form completes a bare address with it.
    request = rf.get(f"/admin/accounts/user/{owner.pk}/change/")
    request.user = staff
    form_class = admin.site.get_model_admin(User).get_form(request, obj=owner)
    avatar = form_class.base_fields["avatar_url"].clean("thirdwx.qlogo.cn/mmopen/vi_32/abc/132")
    assert avatar == "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132"
