"""A long Markdown answer at a fast model's pace in a real browser: the page keeps up, the
rendering work per frame follows the new text (not the whole answer), and the screenshots
people look at (var/test-artifacts/h5/).

The figures of each run go to var/test-artifacts/h5/long-answer.json."""

import json
import os
import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import (
    ARTIFACTS,
    PHONE,
    TRACE_CATEGORIES,
    main_thread_tasks,
    screenshot,
)
from tests.support.h5 import CLIPBOARD, ChatPage, h5_url

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER_CHARS = 20_000
TOKENS_PER_SECOND = 200

# Counts, in the page, what the main thread does while the answer streams: long tasks
# (PerformanceObserver 'longtask': tasks over 50 ms), animation frames, and per batch of
# DOM changes (one per rendered frame) how much text was put into the page.
MEASURE = """
window.__perf = { longTasks: [], frames: [], added: [] };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) __perf.longTasks.push([entry.startTime, entry.duration]);
}).observe({ type: 'longtask', buffered: true });
requestAnimationFrame(function frame(time) {
  __perf.frames.push(time);
  requestAnimationFrame(frame);
});
new MutationObserver((records) => {
  let characters = 0;
  for (const record of records) {
    for (const node of record.addedNodes) characters += (node.textContent || '').length;
  }
  __perf.added.push([performance.now(), characters]);
}).observe(document, { childList: true, subtree: true });
// The page's own moment an answer ends, as a mark a trace shows too.
new MutationObserver((records) => {
  for (const record of records) {
    if (/^(done|stopped|interrupted|error)$/.test(record.target.dataset.status || '')) {
      performance.mark('answer-finished');
    }
  }
}).observe(document, { attributes: true, attributeFilter: ['data-status'], subtree: true });
"""


FINISHED = "() => performance.getEntriesByName('answer-finished').length > 0"


def _long_markdown() -> str:
    """About 20,000 characters of what a model writes: headings, paragraphs in Chinese and
    English, lists, code, tables, quotes."""
    sections = []
    number = 0
    while sum(map(len, sections)) < ANSWER_CHARS:
        number += 1
        sections.append(
            f"## 第 {number} 部分：流式渲染\n\n"
            f"这是第 {number} 段说明文字，模型一边生成一边显示，**重点**和`代码`混在一起。"
            "Streaming text arrives a few tokens at a time, and the page reveals it smoothly. "
            "中文、English 与 emoji 🚀 混排。\n\n"
            f"- 要点一：第 {number} 部分的第一条\n- 要点二：保持界面流畅\n"
            "  - 嵌套的子项\n- 要点三：结束\n\n"
            f"```python\ndef part_{number}(values):\n    total = 0\n"
            "    for value in values:\n        total += value  # 累加\n    return total\n```\n\n"
            "| 指标 | 数值 | 说明 |\n|:--|--:|:--|\n"
            f"| 段落 | {number} | 第 {number} 部分 |\n| 字数 | {number * 100} | 大约 |\n\n"
            "> 引用：渲染的工作量只随新文字增长。\n\n"
        )
    return "".join(sections)[:ANSWER_CHARS]


def _tokens(text: str) -> list[str]:
    """Model-sized pieces: about 4 characters each (code points never split)."""
    return re.findall(r".{1,4}", text, flags=re.DOTALL)


def test_a_20000_character_markdown_answer_at_200_tokens_per_second(
    pages, web_site, owner, upstream, browser
):
    """No main-thread task of the page's takes 50 ms or more while the answer streams.

    The 'longtask' PerformanceObserver measures wall time; on these shared 2-core machines
    (the server, the model, PostgreSQL and other test runs compete for the cores) a 10 ms
    task waits its turn and shows as 60 ms. So the bound is checked on each task's CPU time
    from a Chrome trace of the same run; the observer's figures are recorded beside it.
    """
    answer = _long_markdown()
    tokens = _tokens(answer)
    page = pages.open(permissions=CLIPBOARD)
    page.add_init_script(MEASURE)
    chat = ChatPage(page).open(h5_url(web_site.url, owner))

    with upstream.serving_untagged(tokens=tokens, rate=TOKENS_PER_SECOND) as scenario:
        turn = chat.ask("请用 Markdown 详细介绍流式渲染")
        expect(turn.locator(".answer")).to_contain_text("第 1 部分", timeout=10_000)
        page.wait_for_timeout(2500)
        screenshot(page, "h5/streaming-desktop")  # before measuring: a capture is a long task
        browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
        started = page.evaluate("performance.mark('measure-start').startTime")
        # Waiting with as little as possible running in the page meanwhile (Playwright's
        # own work there would be measured too).
        assert scenario.wait_finished(120)
        page.wait_for_function(FINISHED, polling=1000, timeout=60_000)
        trace = browser.stop_tracing()
    assert chat.wait_finished(turn) == "done"
    finished = page.evaluate("performance.getEntriesByName('answer-finished')[0].startTime")
    tasks = main_thread_tasks(trace, start_mark="measure-start", end_mark="answer-finished")

    assert chat.copied_text(turn) == answer == chat.record(turn).answer
    perf = page.evaluate("window.__perf")
    seconds = (finished - started) / 1000
    frames = [t for t in perf["frames"] if started <= t <= finished]
    long_tasks = [d for t, d in perf["longTasks"] if started <= t <= finished]
    added = [c for t, c in perf["added"] if started <= t <= finished]
    sent_at = scenario.token_sent_at
    figures = {
        "answer_characters": len(answer),
        "tokens": len(tokens),
        "upstream_tokens_per_second": round((len(sent_at) - 1) / (sent_at[-1] - sent_at[0]), 1),
        "streamed_seconds": round(seconds, 2),
        "frames_per_second": round(len(frames) / seconds, 1),
        "longest_task_cpu_ms": round(max(cpu for _, cpu in tasks), 1),
        "longest_task_wall_ms": round(max(wall for wall, _ in tasks), 1),
        "main_thread_cpu_seconds": round(sum(cpu for _, cpu in tasks) / 1000, 2),
        "longtask_observer_count": len(long_tasks),
        "longtask_observer_longest_ms": max(long_tasks, default=0),
        "largest_dom_insert_characters": max(added),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    (ARTIFACTS / "h5").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "h5" / "long-answer.json").write_text(json.dumps(figures, indent=2) + "\n")
    # Rendering follows the new text: no frame puts more than a block's worth of text into
    # the page (re-rendering the whole answer would put up to all 20,000 characters).
    assert max(added) < len(answer) / 10, figures
    assert figures["longest_task_cpu_ms"] < 50, figures
    screenshot(page, "h5/streamed-desktop")


def test_a_streamed_answer_on_a_360_pixel_phone(pages, web_site, owner, upstream):
    page = pages.open(PHONE)
    chat = ChatPage(page).open(h5_url(web_site.url, owner))
    messages = page.locator(".messages")
    tokens = _tokens(_long_markdown()[:2400])

    with upstream.serving_untagged(tokens=tokens, rate=60):
        turn = chat.ask("流式渲染是什么？")
        expect(turn.locator(".answer")).to_contain_text("第 1 部分", timeout=10_000)
        page.wait_for_timeout(1500)
        screenshot(page, "h5/streaming-phone")
        # Scrolled up to read, the reader stays where they are while text keeps coming.
        messages.hover()
        page.mouse.wheel(0, -100_000)
        expect(page.locator(".jump")).to_be_visible()
        shown = chat.shown_text(turn)
        expect(turn.locator(".answer")).not_to_have_text(shown)
        expect(page.locator(".msg-user .bubble").first).to_be_in_viewport()
        screenshot(page, "h5/scrolled-up-phone")
        page.locator(".jump").click()
        expect(page.locator(".jump")).to_be_hidden()
        assert chat.wait_finished(turn) == "done"

    at_bottom = "e => e.scrollHeight - e.scrollTop - e.clientHeight < 2"
    assert messages.evaluate(at_bottom)  # followed the answer to its end
    screenshot(page, "h5/streamed-phone")
