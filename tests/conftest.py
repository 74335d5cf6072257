"""Shared cast and real parts: the test upstream, a live daphne server, users and tokens,
nginx serving the site, a real browser."""

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections

from accounts.models import User
from accounts.tokens import token_issue
from chatproject.db import db_threads_close
from tests.support.browser import Pages, chromium_available, launch_chromium, static_collect
from tests.support.live import LIMIT_SETTINGS, LiveServer, database_env
from tests.support.nginx import Nginx, nginx_available
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="session", autouse=True)
def _close_database_pools(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Hand pooled PostgreSQL connections back before the test database is dropped."""
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        # Async tests reach the ORM through asgiref's shared thread, the stream path through
        # the database threads: close their connections too.
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()
        db_threads_close()
        for connection in connections.all():
            if hasattr(connection, "close_pool"):
                connection.close_pool()


@pytest.fixture(autouse=True)
def _limits_off(settings) -> None:
    for name in LIMIT_SETTINGS:
        setattr(settings, name, 0)


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
def live_env(django_db_setup, upstream: FakeUpstream) -> dict[str, str]:
    """The environment of every server process the tests start (they share DB and Redis)."""
    return {
        **database_env(),
        "DEBUG": "0",
        # Test servers speak plain http: no redirect to https, cookies sent over http.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        **dict.fromkeys(LIMIT_SETTINGS, "0"),
        "SECRET_KEY": settings.SECRET_KEY,  # tokens minted here must verify there
        "CHAT_DEV_LOGIN": "1",
        "LLM_MODELS": json.dumps(live_models(upstream)),
        "LLM_API_KEY": "",
        "CHAT_PING_SECONDS": "0.4",
        "CHAT_DETACH_GRACE_SECONDS": "1",
        "CHAT_CHECKPOINT_SECONDS": "0.3",
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        # Record ids restart with every test database: keep each run's Redis keys apart.
        "CHAT_REDIS_PREFIX": f"chat-test-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture(scope="session")
def start_server(live_env: dict[str, str], tmp_path_factory) -> Iterator:
    """Start another real server process; all are stopped at the end of the session."""
    started: list[LiveServer] = []

    def start(*, software: str = "daphne", **overrides: str) -> LiveServer:
        log_path: Path = tmp_path_factory.mktemp("live") / f"{software}.log"
        server = LiveServer({**live_env, **overrides}, log_path, software=software)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def daphne_server(start_server) -> LiveServer:
    return start_server()


@pytest.fixture(scope="session")
def other_server(start_server, daphne_server: LiveServer) -> LiveServer:
    """A second process sharing PostgreSQL + Redis; on the embedded default (one process,
    memory only) the same process stands in, so the same tests run there too."""
    if not os.environ.get("REDIS_URL"):
        return daphne_server
    return start_server()


@pytest.fixture(scope="session")
def web_site(daphne_server: LiveServer, tmp_path_factory) -> Iterator[Nginx]:
    """The site as deployed: nginx serving collectstatic's files (pages, admin) and proxying
    the rest to a live server (docs/deploy.md). Its `url` is what a browser opens."""
    if not nginx_available():
        pytest.skip("nginx not installed (make test installs it)")
    static_root = static_collect()
    backend = daphne_server.url.removeprefix("http://")
    site = Nginx(
        backends=[backend], workdir=tmp_path_factory.mktemp("site"), static_root=static_root
    )
    site.start()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, through Playwright's sync API (never a browser
    download), for the tests of one module: those are plain `def` tests.

    Playwright's sync API keeps its event loop running in this thread while it is open, so
    Django sees every ORM call of these tests as made from async code and refuses it. The
    tests are synchronous; Playwright's own documentation sets DJANGO_ALLOW_ASYNC_UNSAFE for
    this, here for as long as the browser is open (the module's tests). Async tests must
    not be in a module that uses the browser: they would find a loop already running.
    """
    if not chromium_available():
        pytest.skip("chromium not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)  # for fixtures that act on failures
    return report


@pytest.fixture
def pages(browser, request) -> Iterator[Pages]:
    """`pages.open()` a desktop-sized page, `pages.open(PHONE)` a 360x640 phone, each in a
    browser context of its own; a page error or CSP violation fails the test, and a failed
    test leaves screenshots in var/test-artifacts/failures/."""
    opened = Pages(browser)
    yield opened
    report = getattr(request.node, "report_call", None)
    failed = request.node.name if report is not None and report.failed else None
    problems = opened.close(failed_test=failed)
    assert not problems, "\n".join(problems)


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
