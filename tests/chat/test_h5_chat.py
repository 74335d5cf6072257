"""The H5 chat page in a real browser (Debian's chromium) against a live server behind nginx,
with the local test upstream as the model: what a reader in a mini-program's <web-view>
or a mobile browser does and sees."""

import json
import re
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat.models import ChatRecord, ChatSession
from tests.support.browser import PHONE, screenshot, static_collect
from tests.support.cutter import CuttingProxy
from tests.support.h5 import CLIPBOARD, ChatPage, h5_url
from tests.support.nginx import Nginx
from tests.support.servers import bearer

pytestmark = pytest.mark.django_db(transaction=True)

# An answer with what breaks naive clients: CJK, emoji (a ZWJ family too), quotes,
# newlines and blank lines, Markdown of every common kind.
RICH_TOKENS = [
    "## 流式输出",
    "\n\n你好！这是**流式**回答 🚀，",
    "含有 emoji 👨‍👩‍👧 和 “引号”。\n",
    "第二行紧跟着。\n\n",
    "1. 第一步\n2. 第二步：`pip install`\n\n",
    "```python\nprint('你好')\n\nfor i in range(3):\n    print(i)\n```\n\n",
    "| 名称 | 数量 |\n|:--|--:|\n| 苹果 🍎 | 3 |\n| 香蕉 | 12 |\n\n",
    "> 引用一句话\n\n最后一段，",
    "完。",
]


@pytest.fixture
def chat(pages, web_site, owner) -> ChatPage:
    """The page as a mini-program opens it for `owner`, on a desktop-sized window."""
    return ChatPage(pages.open(permissions=CLIPBOARD)).open(h5_url(web_site.url, owner))


def test_an_answer_streams_in_before_the_model_has_finished(chat, upstream):
    scenario = upstream.script(tokens=[f"第{i}句。" for i in range(40)], pace=0.05)

    turn = chat.ask(f"慢慢回答 {scenario.tag}")

    expect(turn.locator(".answer")).to_contain_text("第0句", timeout=5000)
    assert not scenario.finished.is_set()
    expect(turn.locator(".cursor")).to_be_visible()
    assert chat.wait_finished(turn) == "done"
    expect(turn.locator(".cursor")).to_have_count(0)
    assert chat.shown_text(turn).endswith("第39句。")


def test_thinking_dots_show_until_the_first_word(chat, upstream):
    scenario = upstream.script(tokens=["终于", "来了"], stall_after_headers=1.0)

    turn = chat.ask(f"想一想 {scenario.tag}")

    expect(turn.locator(".thinking")).to_be_visible()
    expect(turn.locator(".answer")).to_contain_text("终于来了", timeout=5000)
    expect(turn.locator(".thinking")).to_be_hidden()


def test_the_text_shown_is_the_saved_answer(chat, upstream, pages, web_site, owner):
    scenario = upstream.script(tokens=RICH_TOKENS, pace=0.04)

    turn = chat.ask(f"用 Markdown 回答 {scenario.tag}")
    assert chat.wait_finished(turn) == "done"

    record = chat.record(turn)
    assert record.answer == "".join(RICH_TOKENS)
    assert chat.copied_text(turn) == record.answer
    streamed = chat.shown_text(turn)
    assert "👨‍👩‍👧" in streamed
    assert "print('你好')" in streamed
    expect(turn.locator("table td.align-right")).to_have_count(2)
    # Rendered piece by piece while it streamed, it reads exactly as the saved answer
    # rendered at once from the history.
    again = ChatPage(pages.open()).open(h5_url(web_site.url, owner))
    assert again.shown_text(again.last_turn) == streamed


def test_stop_saves_what_the_page_shows(chat, upstream):
    tokens = [f"第{i}段文字，" for i in range(200)]
    scenario = upstream.script(tokens=tokens, pace=0.03)

    turn = chat.ask(f"说很多 {scenario.tag}")
    expect(turn.locator(".answer")).to_contain_text("第5段", timeout=5000)
    chat.page.locator(".send.is-stop").click()

    assert chat.wait_finished(turn) == "stopped"
    record = chat.record(turn)
    assert record.status == "stopped"
    assert 0 < len(record.answer) < len("".join(tokens))
    assert chat.copied_text(turn) == record.answer
    expect(turn.locator(".answer-status")).to_have_text("已停止生成")
    expect(chat.page.locator(".send:not(.is-stop)")).to_be_enabled()


@pytest.fixture
def proxied_chat(pages, web_site, owner):
    """The page reached through a proxy that can cut the network under it."""
    proxy = CuttingProxy(int(web_site.url.rsplit(":", 1)[1]))
    with proxy:
        page = pages.open(permissions=CLIPBOARD)
        yield ChatPage(page).open(h5_url(proxy.url, owner)), proxy


def _requests_seen(page) -> list[str]:
    """Every request the page makes from now on, as "METHOD url"."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(f"{request.method} {request.url}"))
    return seen


def test_a_network_cut_mid_answer_resumes_without_asking_again(proxied_chat, upstream):
    chat, proxy = proxied_chat
    tokens = [f"片段{i}🙂\n" for i in range(60)]
    scenario = upstream.script(tokens=tokens, pace=0.04)
    requests = _requests_seen(chat.page)

    turn = chat.ask(f"长回答 {scenario.tag}")
    expect(turn.locator(".answer")).to_contain_text("片段5", timeout=5000)
    proxy.cut()

    assert chat.wait_finished(turn) == "done"
    assert chat.copied_text(turn) == "".join(tokens) == chat.record(turn).answer
    assert len(scenario.requests) == 1  # the model was asked once
    asked = [r for r in requests if r.startswith("POST") and r.endswith("/api/chat/stream")]
    resumed = [r for r in requests if re.search(r"GET .*/events\?last_event_id=[1-9]", r)]
    assert len(asked) == 1
    assert resumed


def test_back_on_screen_an_answer_is_read_on_from_its_last_event(chat, upstream):
    tokens = [f"句{i}。" for i in range(50)]
    scenario = upstream.script(tokens=tokens, pace=0.04)
    requests = _requests_seen(chat.page)

    turn = chat.ask(f"切到后台 {scenario.tag}")
    expect(turn.locator(".answer")).to_contain_text("句3", timeout=5000)
    # What a phone does when the reader comes back to the app.
    chat.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")

    assert chat.wait_finished(turn) == "done"
    assert chat.copied_text(turn) == "".join(tokens)
    assert len(scenario.requests) == 1
    assert any("/events?last_event_id=" in r for r in requests)
    assert sum(r.startswith("POST") and r.endswith("/api/chat/stream") for r in requests) == 1


@pytest.fixture(scope="module")
def patient_site(start_server, tmp_path_factory):
    """The site with a server that keeps a dropped answer going for 15 s (the suite's
    servers give up after 1 s), time enough for a page to reload under load."""
    server = start_server(CHAT_DETACH_GRACE_SECONDS="15")
    site = Nginx(
        backends=[server.url.removeprefix("http://")],
        workdir=tmp_path_factory.mktemp("patient-site"),
        static_root=static_collect(),
    )
    site.start()
    yield site
    site.stop()


def test_a_reload_mid_answer_reads_it_on_without_asking_again(pages, patient_site, owner, upstream):
    tokens = [f"行{i}\n" for i in range(60)]
    scenario = upstream.script(tokens=tokens, pace=0.05)
    chat = ChatPage(pages.open(permissions=CLIPBOARD)).open(h5_url(patient_site.url, owner))

    turn = chat.ask(f"重新加载 {scenario.tag}")
    expect(turn.locator(".answer")).to_contain_text("行3", timeout=5000)
    chat.page.reload()
    chat.wait_ready()

    assert chat.wait_finished() == "done"
    assert chat.copied_text() == "".join(tokens) == chat.record().answer
    assert len(scenario.requests) == 1
    expect(chat.turns).to_have_count(1)


MALICIOUS_TOKENS = [
    "<script>window.__pwned = 'script'</script>\n\n",
    '<img src="x" onerror="window.__pwned = \'img\'">\n\n',
    "<iframe src=\"javascript:window.__pwned = 'iframe'\"></iframe>\n\n",
    "[点我领奖](javascript:window.__pwned='link')\n\n",
    "<a href=\"javascript:window.__pwned='anchor'\">另一个链接</a>\n\n",
    "[数据](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)\n\n",
    "![图](x\" onerror=\"window.__pwned='alt')\n\n",
    "<svg onload=\"window.__pwned='svg'\"></svg> <javascript:alert(1)>\n\n",
    "[正常链接](https://example.com/a?b=1)",
]


def test_a_malicious_answer_runs_nothing_and_navigates_nowhere(chat, upstream):
    page = chat.page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.context.route("https://example.com/**", lambda route: route.abort())
    scenario = upstream.script(tokens=MALICIOUS_TOKENS, pace=0.02)
    address = page.url

    turn = chat.ask(f"恶意回答 {scenario.tag}")
    assert chat.wait_finished(turn) == "done"

    answer = turn.locator(".answer")
    expect(answer).to_contain_text("<script>window.__pwned")  # shown as text
    for tag in ["script", "img", "iframe", "svg", "object", "embed"]:
        expect(answer.locator(tag)).to_have_count(0)
    links = answer.locator("a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert hrefs == ["https://example.com/a?b=1"]
    # A real link opens beside the chat, without a handle on it.
    assert set(links.first.get_attribute("rel").split()) >= {"noopener", "noreferrer"}
    with page.context.expect_page() as popup:
        links.first.click()
    popup.value.close()
    answer.get_by_text("点我领奖").click()
    answer.get_by_text("另一个链接").click()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.url == address


def test_a_rating_persists_across_reload(chat, upstream):
    scenario = upstream.script(tokens=["有用的", "回答"])
    turn = chat.ask(f"评价我 {scenario.tag}")
    assert chat.wait_finished(turn) == "done"

    turn.locator(".act-like").click()
    expect(turn.locator(".act-like")).to_have_attribute("aria-pressed", "true")
    expect(turn.locator(".act-dislike")).to_have_attribute("aria-pressed", "false")
    chat.page.reload()
    chat.wait_ready()

    turn = chat.last_turn
    expect(turn.locator(".act-like")).to_have_attribute("aria-pressed", "true")
    assert chat.record(turn).rating == "useful"
    turn.locator(".act-dislike").click()
    expect(turn.locator(".act-dislike")).to_have_attribute("aria-pressed", "true")
    expect(turn.locator(".act-like")).to_have_attribute("aria-pressed", "false")
    chat.page.reload()
    chat.wait_ready()
    expect(chat.last_turn.locator(".act-dislike")).to_have_attribute("aria-pressed", "true")
    assert chat.record(chat.last_turn).rating == "not_useful"


def _session_with_records(owner, count: int, title: str = "长长的历史") -> ChatSession:
    session = ChatSession.objects.create(owner=owner, title=title)
    start = timezone.now() - timedelta(hours=2)
    ChatRecord.objects.bulk_create(
        ChatRecord(
            session=session,
            owner=owner,
            question=f"问题 {i}",
            answer=f"回答 **{i}**\n\n第二段 {i}",
            status="done",
            created_at=start + timedelta(minutes=i),
        )
        for i in range(count)
    )
    return session


def test_history_loads_older_pages_on_scroll_up(pages, web_site, owner):
    _session_with_records(owner, 45)
    chat = ChatPage(pages.open()).open(h5_url(web_site.url, owner))
    questions = chat.page.locator(".msg-user .bubble")

    expect(questions).to_have_count(20)
    assert questions.last.inner_text() == "问题 44"
    expect(chat.page.locator(".app")).to_contain_text("回答 44")
    for shown in (40, 45):
        chat.page.locator(".messages").evaluate("element => { element.scrollTop = 0; }")
        expect(questions).to_have_count(shown)
    assert questions.all_inner_texts() == [f"问题 {i}" for i in range(45)]
    expect(chat.page.locator(".older")).to_have_text("没有更早的消息了")
    screenshot(chat.page, "h5/history-desktop")


def test_sessions_list_switch_and_start_a_new_one(pages, web_site, owner, upstream):
    _session_with_records(owner, 3, title="旧的会话")
    ChatSession.objects.filter(owner=owner).update(updated_at=timezone.now() - timedelta(days=2))
    _session_with_records(owner, 2, title="最近的会话")
    chat = ChatPage(pages.open(PHONE)).open(h5_url(web_site.url, owner))
    expect(chat.page.locator(".bar-title")).to_have_text("最近的会话")

    chat.page.get_by_role("button", name="会话列表").click()
    items = chat.page.locator(".drawer-item")
    expect(items).to_have_count(2)
    screenshot(chat.page, "h5/sessions-phone")
    items.filter(has_text="旧的会话").click()
    expect(chat.page.locator(".bar-title")).to_have_text("旧的会话")
    expect(chat.turns).to_have_count(3)

    chat.page.get_by_role("button", name="新对话").click()
    expect(chat.turns).to_have_count(0)
    expect(chat.page.locator(".empty")).to_be_visible()
    scenario = upstream.script(tokens=["新会话的回答"])
    turn = chat.ask(f"开始新话题 {scenario.tag}")
    assert chat.wait_finished(turn) == "done"
    assert ChatSession.objects.filter(owner=owner).count() == 3
    expect(chat.page.locator(".bar-title")).to_contain_text("开始新话题")


FAKE_MINI_PROGRAM = """
window.__posted = [];
window.jWeixin = { miniProgram: {
  getEnv: (callback) => callback({ miniprogram: true }),
  postMessage: (message) => window.__posted.push(JSON.parse(JSON.stringify(message.data))),
} };
"""


def test_the_handoff_posts_the_chat_list_the_bulk_endpoint_accepts_twice(
    pages, web_site, owner, owner_token, upstream
):
    page = pages.open()
    page.add_init_script(FAKE_MINI_PROGRAM)
    chat = ChatPage(page).open(h5_url(web_site.url, owner))
    first = upstream.script(tokens=["第一个", "回答"])
    second = upstream.script(tokens=["第二个", "回答 🎉"])

    chat.wait_finished(chat.ask(f"一 {first.tag}"))
    chat.last_turn.locator(".act-like").click()
    expect(chat.last_turn.locator(".act-like")).to_have_attribute("aria-pressed", "true")
    chat.wait_finished(chat.ask(f"二 {second.tag}"))
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide'))")

    posted = page.evaluate("window.__posted")
    assert len(posted) == 3  # after each answer, and on pagehide
    items = posted[-1]
    records = list(ChatRecord.objects.order_by("pk"))
    assert [item["record_id"] for item in items] == [r.pk for r in records]
    assert [item["answer"] for item in items] == ["第一个回答", "第二个回答 🎉"]
    assert [item["rating"] for item in items] == ["useful", "none"]
    assert {item["terminal"] for item in items} == {"webview"}
    assert [item["client_id"] for item in items] == [r.client_id for r in records]
    for _ in range(2):
        answer = httpx.post(
            f"{web_site.url}/api/chat/records/bulk",
            headers={**bearer(owner_token), "Content-Type": "application/json"},
            content=json.dumps({"items": items}),
        )
        assert answer.status_code == 200
        assert answer.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "error": 0}
    assert ChatRecord.objects.count() == 2
    assert ChatRecord.objects.get(pk=records[0].pk).rating == "useful"


def test_outside_a_mini_program_nothing_is_posted(chat, upstream):
    scenario = upstream.script(tokens=["普通浏览器"])
    chat.wait_finished(chat.ask(f"浏览器 {scenario.tag}"))
    chat.page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide'))")
    assert chat.page.evaluate("typeof window.jWeixin") == "undefined"


WIDE_TOKENS = [
    "一个很长的链接 https://example.com/" + "a" * 120 + " 和一段很长的代码：\n\n",
    "```\n" + "x = '" + "很长" * 80 + "'\n```\n\n",
    "| " + " | ".join(f"列{i}" for i in range(12)) + " |\n",
    "|" + "---|" * 12 + "\n",
    "| " + " | ".join(f"值{i}值{i}" for i in range(12)) + " |\n\n",
    "没有空格的长串" + "字" * 200,
]


def test_the_page_fits_a_360_pixel_phone(pages, web_site, owner, upstream):
    chat = ChatPage(pages.open(PHONE)).open(h5_url(web_site.url, owner))
    scenario = upstream.script(tokens=WIDE_TOKENS, pace=0.02)

    turn = chat.ask(f"很宽的回答 {scenario.tag}")
    assert chat.wait_finished(turn) == "done"

    page = chat.page
    widths = page.evaluate(
        """() => ({
        page: document.documentElement.scrollWidth,
        messages: document.querySelector('.messages').scrollWidth,
        window: window.innerWidth })"""
    )
    assert widths["page"] <= widths["window"] == 360
    assert widths["messages"] <= 360
    box = page.locator(".composer").bounding_box()
    assert box["y"] + box["height"] <= 640
    assert box["width"] == 360


def test_errors_are_told_in_words_and_the_question_is_kept(chat, upstream):
    page = chat.page
    page.route("**/api/chat/stream", lambda route: route.abort("internetdisconnected"))

    chat.ask("断网时发送的问题")

    expect(page.locator(".notice")).to_contain_text("网络连接失败")
    expect(page.locator(".input")).to_have_value("断网时发送的问题")
    expect(chat.turns).to_have_count(0)
    screenshot(page, "h5/error-network-desktop")
    page.unroute("**/api/chat/stream")
    page.locator(".notice-action").click()  # 重试
    turn = chat.last_turn
    assert chat.wait_finished(turn) == "done"
    expect(page.locator(".input")).to_have_value("")


def test_a_model_error_is_told_and_retry_asks_again(chat, upstream):
    limited = upstream.script(status=429, error_code="rate_limit_exceeded")
    turn = chat.ask(f"太快了 {limited.tag}")

    assert chat.wait_finished(turn) == "error"
    expect(turn.locator(".answer-status")).to_have_text("提问太频繁了，请稍等一会儿再试")
    expect(turn.locator(".act-like")).to_be_hidden()
    screenshot(chat.page, "h5/error-model-desktop")
    turn.locator(".act-retry").click()
    expect(chat.turns).to_have_count(2)
    assert chat.wait_finished(chat.last_turn) == "error"
    assert len(limited.requests) == 2  # retry is a new question, asked on purpose


def test_content_blocked_is_told_without_retry(chat, upstream):
    scenario = upstream.script(tokens=["部分"], finish_reason="content_filter")
    turn = chat.ask(f"敏感 {scenario.tag}")
    assert chat.wait_finished(turn) == "error"
    expect(turn.locator(".answer-status")).to_have_text("内容未通过安全审核，无法回答")
    expect(turn.locator(".act-retry")).to_be_hidden()


def test_a_draining_server_is_asked_again_without_a_word(chat, upstream):
    scenario = upstream.script(tokens=["换了", "进程"])
    refused = []

    def drain_once(route):
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": "0", "Content-Type": "application/json"},
            body='{"error":{"code":"server_draining","message":"restarting"}}',
        )

    chat.page.route("**/api/chat/stream", drain_once)
    turn = chat.ask(f"重启中 {scenario.tag}")

    assert chat.wait_finished(turn) == "done"
    assert len(refused) == 1
    assert chat.shown_text(turn) == "换了进程"
    expect(chat.page.locator(".notice")).to_be_hidden()


def test_an_expired_login_says_so_and_keeps_the_question(chat, owner):
    chat.page.evaluate("sessionStorage.setItem('chat.token', 'forged:token')")

    chat.ask("登录过期后的问题")

    expect(chat.page.locator(".gate")).to_contain_text("登录已过期，请重新登录")
    expect(chat.page.locator(".input")).to_have_value("登录过期后的问题")
    chat.page.locator(".gate-button").click()  # the dev login (on in the test server)
    chat.wait_ready()
    expect(chat.page.locator(".input")).to_have_value("登录过期后的问题")


def test_the_ticket_leaves_the_address_at_once(pages, web_site, owner):
    page = pages.open()
    chat = ChatPage(page).open(h5_url(web_site.url, owner, lang="en"))

    assert page.url == f"{web_site.url}/h5/?lang=en"
    expect(page.locator(".input")).to_have_attribute("placeholder", "Ask anything…")
    assert not page.evaluate("history.length > 1 && location.search.includes('ticket')")
    chat.page.reload()
    chat.wait_ready()  # the tab keeps its token; the ticket was used once


def test_a_used_ticket_is_refused_in_words(pages, web_site, owner):
    url = h5_url(web_site.url, owner)
    ChatPage(pages.open()).open(url)
    page = pages.open()
    page.goto(url)
    expect(page.locator(".gate")).to_contain_text("页面链接已失效，请返回小程序重新打开")


def test_without_a_ticket_the_dev_login_is_offered(pages, web_site, owner):
    page = pages.open()
    page.goto(f"{web_site.url}/h5/")
    expect(page.locator(".gate-form")).to_be_visible()
    page.locator(".gate-input").fill("o_h5_dev")
    page.locator(".gate-button").click()
    ChatPage(page).wait_ready()
    expect(page.locator(".empty")).to_have_text("你好！有什么可以帮你？")
