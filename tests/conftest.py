"""Shared cast and real parts: the test upstream, a live daphne server, users and tokens."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connections

from accounts.models import User
from accounts.tokens import token_issue
from tests.support.live import LiveServer, database_env
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="session", autouse=True)
def _close_database_pools(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Hand pooled PostgreSQL connections back before the test database is dropped."""
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        for connection in connections.all():
            if hasattr(connection, "close_pool"):
                connection.close_pool()


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def live_models(upstream: FakeUpstream) -> list[dict]:
    """The models the live server knows, all served by the test upstream."""
    base = {"base_url": upstream.base_url, "api_key": "test-key", "max_retries": 0}
    return [
        {**base, "name": "test-model", "model": "upstream-model-id", "timeout": 5},
        {**base, "name": "test-impatient", "model": "upstream-impatient", "timeout": 0.5},
    ]


@pytest.fixture(scope="session")
def daphne_server(
    django_db_setup, django_db_blocker, upstream: FakeUpstream, tmp_path_factory
) -> Iterator[LiveServer]:
    env = {
        **database_env(),
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,  # tokens minted here must verify there
        "CHAT_DEV_LOGIN": "1",
        "LLM_MODELS": json.dumps(live_models(upstream)),
        "LLM_API_KEY": "",
        "CHAT_PING_SECONDS": "0.4",
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
    }
    log_path: Path = tmp_path_factory.mktemp("live") / "daphne.log"
    server = LiveServer(env, log_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def live_client(daphne_server: LiveServer):
    async with httpx.AsyncClient(base_url=daphne_server.url, timeout=30) as client:
        yield client


# --- The cast: owner, other, staff --------------------------------------------------------


@pytest.fixture
def owner() -> User:
    return User.objects.create(username="wx_owner-openid", openid="owner-openid", nickname="Alice")


@pytest.fixture
def other() -> User:
    return User.objects.create(username="wx_other-openid", openid="other-openid", nickname="Bob")


@pytest.fixture
def staff() -> User:
    return User.objects.create_user(
        username="charlie", password="staff-password-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def owner_token(owner: User) -> str:
    return token_issue(user=owner).token


@pytest.fixture
def other_token(other: User) -> str:
    return token_issue(user=other).token
