"""A moderator in a real browser (Debian's chromium, headless, driven by Playwright): the
admin's index, the records list, a record (flagged through its page) and the dashboard
render, with their charts, no script error and no blocked resource, in the admin's two
languages (LANGUAGE_CODE zh-hans, the default, and en). Screenshots, desktop and 360 px
wide, are left in var/test-artifacts/admin/<language>/ to look at."""

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Browser, Page, sync_playwright

from accounts.models import User
from chat.models import ChatRecord, ChatSession
from chat.moderation import MODERATOR_GROUP, record_hide
from tests.support.live import ROOT, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "var" / "test-artifacts" / "admin"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
PASSWORD = "moderator-password-123"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium not installed (make test does)"),
]


# What each language says where the test reads the page's words.
WORDS = {
    "zh-hans": {
        "done": "已标记待复核。",
        "logged": "已标记待复核（moderator，",
        "first chart": "每日提问与用户",
        "queue": "待审队列",
        "hidden": "已隐藏",
    },
    "en": {
        "done": "Flagged.",
        "logged": "Flagged by moderator,",
        "first chart": "Questions and users per day",
        "queue": "Review queue",
        "hidden": "Hidden",
    },
}


@pytest.fixture(scope="module", params=list(WORDS))
def admin_site(request, live_env, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The site as `make run` serves it (runserver, which also serves the admin's static
    files), with production settings otherwise (DEBUG off), in one of the admin's languages:
    (address, language)."""
    language = request.param
    port = free_port()
    log = (tmp_path_factory.mktemp("admin-site") / "server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, **live_env, "LANGUAGE_CODE": language},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # runserver's checks take a while on a busy machine
        while True:
            assert process.poll() is None, "the server exited at start"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url, language
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Playwright's sync API keeps its event loop running in this thread while it is open,
    so Django would take this module's (synchronous) ORM calls for async code and refuse
    them: Playwright's documentation sets DJANGO_ALLOW_ASYNC_UNSAFE for this."""
    with sync_playwright() as playwright, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def moderator() -> User:
    user = User.objects.create_user(username="moderator", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATOR_GROUP))
    return user


ANSWER = """可以按下面三步申请退款：

1. 打开 **我的订单**
2. 选择要退款的订单，点 `申请退款`
3. 填写原因并提交

| 支付方式 | 到账时间 |
|:--|--:|
| 微信支付 | 1–3 天 |
| 银行卡 | 3–7 天 |

> 注意：超过 30 天的订单不能在线退款。<script>alert("x")</script>
"""


@pytest.fixture
def chats(owner, other) -> ChatRecord:
    """A month of chats on two models, and the conversation whose answer gets reviewed."""
    now = timezone.now()
    for n in range(60):
        session = ChatSession.objects.create(owner=owner if n % 3 else other, title=f"会话 {n}")
        ChatRecord.objects.create(
            session=session,
            owner=session.owner,
            question=f"问题 {n}：小程序怎么绑定手机号？",
            answer="在「设置 → 账号」里绑定。" * (1 + n % 4),
            status=["done", "done", "done", "stopped", "error"][n % 5],
            error_code="upstream_timeout" if n % 5 == 4 else "",
            rating=["none", "useful", "not_useful", "none"][n % 4],
            rating_reason="没说清楚在哪里" if n % 4 == 2 else "",
            model_name=["deepseek", "qwen-plus"][n % 2],
            source=["stream", "stream", "handoff"][n % 3],
            terminal=["miniprogram", "webview"][n % 2],
            first_token_ms=None if n % 5 == 4 else 400 + 37 * (n % 20) + 300 * (n % 2),
            created_at=now - timedelta(days=n % 30, hours=n % 7),
        )
    session = ChatSession.objects.create(owner=owner, title="退款")
    turns = [("你好", "你好！有什么可以帮你？"), ("怎么退款？", ANSWER), ("谢谢", "不客气。")]
    records = [
        ChatRecord.objects.create(
            session=session, owner=owner, question=question, answer=answer, status="done",
            model_name="deepseek", first_token_ms=620, prompt_tokens=85, completion_tokens=240,
            rating="not_useful" if answer == ANSWER else "none",
            rating_reason="银行卡到账时间写错了" if answer == ANSWER else "",
            created_at=now - timedelta(minutes=10 - n), finished_at=now - timedelta(minutes=9 - n),
        )
        for n, (question, answer) in enumerate(turns)
    ]  # fmt: skip
    record_hide(record=records[2], by=None, note="测试")
    return records[1]


class Watched:
    """A logged-in page, and what went wrong on it that no moderator should ever see."""

    def __init__(self, browser: Browser, site: str, viewport: dict, language: str) -> None:
        locale = "zh-CN" if language == "zh-hans" else "en-US"
        self.context = browser.new_context(viewport=viewport, locale=locale)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.site = site
        self.page.goto(f"{site}/admin/login/")
        self.page.fill("#id_username", "moderator")
        self.page.fill("#id_password", PASSWORD)
        self.page.click("input[type=submit]")

    def _console(self, message) -> None:
        # The browser asks for /favicon.ico by itself; the site has none, and nobody sees it.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            self.problems.append(f"console: {message.text} {message.location['url']}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"{response.status} {response.url}")

    def open(self, path: str) -> Page:
        response = self.page.goto(self.site + path)
        assert response is not None
        assert response.status == 200, path
        assert "Traceback" not in self.page.content()
        return self.page

    def fits_its_width(self) -> bool:
        overflow = "document.documentElement.scrollWidth - window.innerWidth"
        return self.page.evaluate(overflow) <= 1


def _shot(page: Page, language: str, name: str) -> Path:
    path = ARTIFACTS / language / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def test_a_moderator_reviews_in_a_real_browser(browser, admin_site, moderator, chats):
    site, language = admin_site
    words = WORDS[language]
    desktop = Watched(browser, site, DESKTOP, language)

    index = desktop.open("/admin/")
    assert words["queue"] in index.locator("#moderation-module").inner_text()
    _shot(index, language, "index-1280")

    listing = desktop.open("/admin/chat/chatrecord/?moderation=queue")
    queued = listing.locator("#result_list tbody tr").count()
    assert listing.locator(".field-rating_display .not-useful").count() >= 1
    _shot(listing, language, "changelist-1280")
    hidden = desktop.open("/admin/chat/chatrecord/?is_hidden__exact=1")
    badge = hidden.locator(".field-moderation_display .is-hidden")
    assert badge.is_visible()  # the admin's own CSS hides an element of class "hidden"
    assert badge.inner_text() == words["hidden"]

    record = desktop.open(f"/admin/chat/chatrecord/{chats.pk}/change/")
    assert record.locator(".answer-rendered strong").first.inner_text() == "我的订单"
    assert record.locator(".answer-rendered table td").first.inner_text() == "微信支付"
    assert "**我的订单**" in record.locator(".answer-raw").inner_text()
    assert record.locator(".conversation .turn").count() == 3
    assert record.locator("input[name=_save]").count() == 0  # a moderator edits nothing
    record.fill("textarea[name=note]", "到账时间需要核对")
    record.click("button[value=flagged]")
    assert words["done"] in record.locator(".messagelist").inner_text()
    log = record.locator(".moderation-log").inner_text()
    assert words["logged"] in log
    assert "到账时间需要核对" in log
    _shot(record, language, "record-1280")

    dashboard = desktop.open("/admin/dashboard/")
    charts = dashboard.locator("figure.chart svg")
    assert charts.count() == 4
    for index in range(4):
        chart = charts.nth(index)
        assert chart.bounding_box()["width"] >= 500
        assert chart.locator("rect, circle").count() > 10  # columns or points were drawn
    titles = dashboard.locator("figure.chart figcaption").all_inner_texts()
    assert titles[0] == words["first chart"]
    assert re.search(r"\b63\b", dashboard.locator(".dashboard-kpis").inner_text())
    _shot(dashboard, language, "dashboard-1280")
    assert desktop.problems == []

    phone = Watched(browser, site, PHONE, language)
    for path, name in [
        ("/admin/", "index-360"),
        ("/admin/chat/chatrecord/?moderation=queue", "changelist-360"),
        (f"/admin/chat/chatrecord/{chats.pk}/change/", "record-360"),
        ("/admin/dashboard/", "dashboard-360"),
    ]:
        page = phone.open(path)
        _shot(page, language, name)
        assert phone.fits_its_width(), name
    assert phone.page.locator("figure.chart svg").count() == 4
    assert phone.problems == []
    assert queued >= 15
