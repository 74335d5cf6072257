"""A real browser for the pages' tests: Debian's chromium, headless, driven by Playwright.

scripts/system-deps.sh installs chromium (and the CJK and emoji fonts); Playwright never
downloads a browser here, it launches /usr/bin/chromium through `executable_path`.
The fixtures in tests/conftest.py build on these: `browser`, `pages`, `web_site`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.support.live import ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Flags that work on these machines (and in CI, as root, without a display).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots and figures the tests leave for people to look at (var/ is not committed).
ARTIFACTS = ROOT / "var" / "test-artifacts"

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 640}
CSP_MESSAGE = re.compile(r"Content[- ]Security[- ]Policy", re.IGNORECASE)


def chromium_available() -> bool:
    return CHROMIUM.exists()


def launch_chromium(playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@functools.cache
def static_collect() -> Path:
    """What `manage.py collectstatic` gives production, for the tests' nginx to serve: under
    var/ (nginx's workers, not root, cannot enter pytest's private temporary folders).
    Once per test run."""
    target = ROOT / "var" / "test-staticfiles"
    with override_settings(STATIC_ROOT=target):
        call_command("collectstatic", interactive=False, clear=True, verbosity=0)
    return target


@dataclass
class PageWatch:
    """What a page did that no user should ever cause: uncaught exceptions and
    Content-Security-Policy violations."""

    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and CSP_MESSAGE.search(message.text):
            self.csp_violations.append(message.text)


class Pages:
    """Browser pages for one test, each in a context of its own (own storage, as separate
    tabs of separate people would be), watched (PageWatch)."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._opened: list[tuple[BrowserContext, Page, PageWatch]] = []

    def open(self, viewport: dict[str, int] = DESKTOP, **context_options) -> Page:
        phone = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
        context = self._browser.new_context(
            viewport=viewport,
            locale="zh-CN",
            **(phone if viewport == PHONE else {}),
            **context_options,
        )
        page = context.new_page()
        watch = PageWatch()
        watch.attach(page)
        self._opened.append((context, page, watch))
        return page

    def close(self, *, failed_test: str | None) -> list[str]:
        """Close every page; what their watches saw (a screenshot each if the test failed)."""
        problems = []
        for number, (context, page, watch) in enumerate(self._opened):
            if failed_test:
                screenshot(page, f"failures/{failed_test}-{number}")
            problems += [f"page error: {error}" for error in watch.page_errors]
            problems += [f"CSP violation: {text}" for text in watch.csp_violations]
            context.close()
        return problems


# What a Chrome trace needs to show the page's main-thread tasks with their CPU time, and
# the page's own marks (performance.mark) that bound a measurement.
TRACE_CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "blink.user_timing",
]


def main_thread_tasks(trace: bytes, *, start_mark: str, end_mark: str) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) of every task of the pages' main threads that began between two
    performance marks, in a trace taken with `browser.start_tracing(page,
    categories=TRACE_CATEGORIES)`.

    Wall time is what the 'longtask' PerformanceObserver sees: on a machine whose cores are
    busy with other work it includes the time the renderer waited for a core. CPU time is
    the work the page itself did in the task.
    """
    events = json.loads(trace)["traceEvents"]
    marks = {
        event["name"]: event["ts"] for event in events if event.get("cat") == "blink.user_timing"
    }
    start, end = marks[start_mark], marks[end_mark]
    main = {
        (event["pid"], event["tid"])
        for event in events
        if event.get("name") == "thread_name" and event["args"].get("name") == "CrRendererMain"
    }
    return [
        (event["dur"] / 1000, event.get("tdur", event["dur"]) / 1000)
        for event in events
        if event.get("name") == "RunTask"
        and event.get("ph") == "X"
        and (event["pid"], event["tid"]) in main
        and start <= event["ts"] <= end
    ]


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot under var/test-artifacts/ and return its path."""
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path
