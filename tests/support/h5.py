"""Driving the H5 chat page (templates/h5/chat.html) as its reader does."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from accounts.models import User
from accounts.tickets import ticket_issue
from accounts.tokens import token_access, token_issue
from chat.models import ChatRecord

FINISHED = re.compile(r"^(done|stopped|interrupted|error)$")
# Reading the clipboard (the copy button) needs these.
CLIPBOARD = ["clipboard-read", "clipboard-write"]


def h5_url(base_url: str, user: User, **params: str) -> str:
    """The address a mini-program opens: the page with a fresh single-use ticket (minted,
    as the mini-program's is, with a token of the user)."""
    ticket = ticket_issue(token=token_access(token_issue(user=user).token)).ticket
    query = "&".join([f"ticket={ticket}"] + [f"{k}={v}" for k, v in params.items()])
    return f"{base_url}/h5/?{query}"


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self, url: str) -> ChatPage:
        self.page.goto(url)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Signed in, and the session's history is shown."""
        expect(self.page.locator(".app[data-ready]")).to_be_attached()

    @property
    def turns(self) -> Locator:
        return self.page.locator(".turn")

    @property
    def last_turn(self) -> Locator:
        return self.turns.last

    def ask(self, question: str) -> Locator:
        self.page.locator(".input").fill(question)
        self.page.locator(".send").click()
        return self.last_turn

    def wait_finished(self, turn: Locator | None = None, *, timeout: float = 20_000) -> str:
        turn = turn or self.last_turn
        expect(turn).to_have_attribute("data-status", FINISHED, timeout=timeout)
        return turn.get_attribute("data-status")

    def record(self, turn: Locator | None = None) -> ChatRecord:
        turn = turn or self.last_turn
        return ChatRecord.objects.get(pk=int(turn.get_attribute("data-record-id")))

    def shown_text(self, turn: Locator | None = None) -> str:
        """The answer as the reader sees it (rendered Markdown)."""
        return (turn or self.last_turn).locator(".answer").inner_text()

    def copied_text(self, turn: Locator | None = None) -> str:
        """The answer's text as the copy button gives it (its Markdown source)."""
        (turn or self.last_turn).locator(".act-copy").click()
        return self.page.evaluate("navigator.clipboard.readText()")
