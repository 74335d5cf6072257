"""What a content checker is, and which one this server uses (`CHAT_CONTENT_CHECK`)."""

import abc
import functools
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

Side = Literal["question", "answer"]
PASS, REVIEW, RISKY = "pass", "review", "risky"

# Short names for the checkers that ship with the server.
_ALIASES = {
    "keywords": "chat.content_check.keywords.KeywordChecker",
    "wechat": "chat.content_check.wechat.WechatMsgSecCheck",
}


@dataclass(frozen=True)
class Verdict:
    """A checker's judgement of one text: WeChat's `suggest` and `label` (msgSecCheck v2:
    100 normal, 10001 ads, 20001 politics, 20002 porn, 20003 abuse, 20006 crime, 20008
    fraud, 20012 vulgar, 20013 copyright, 21000 other) and its trace id."""

    suggest: str  # pass, review or risky
    label: int | None = None
    trace_id: str = ""

    @property
    def blocks(self) -> bool:
        return self.suggest == RISKY or (
            self.suggest == REVIEW and settings.CHAT_CONTENT_CHECK_BLOCK_REVIEW
        )


@dataclass(frozen=True)
class Subject:
    """Whose text is checked: the user's openid (msgSecCheck needs it) and their record."""

    record_id: int
    openid: str


class CheckUnavailable(Exception):
    """The checker could not judge (HTTP error, errcode, timeout): CHAT_CONTENT_CHECK_ON_ERROR
    decides. The message says why, for the log; it never carries a token or the text."""


class ContentChecker(abc.ABC):
    """One instance per process; `check` may be called concurrently for many answers."""

    @abc.abstractmethod
    async def check(self, text: str, *, side: Side, subject: Subject) -> Verdict:
        """Judge `text` (at most CHAT_CONTENT_CHECK_MAX_CHARS characters), or raise
        CheckUnavailable."""


@functools.cache
def checker_configured() -> ContentChecker | None:
    """The checker CHAT_CONTENT_CHECK names, or None when content checks are off."""
    name = settings.CHAT_CONTENT_CHECK
    if not name:
        return None
    path = _ALIASES.get(name, name)
    try:
        checker_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"CHAT_CONTENT_CHECK: cannot import {path!r}: {exc}") from None
    if not (isinstance(checker_class, type) and issubclass(checker_class, ContentChecker)):
        raise ImproperlyConfigured(f"CHAT_CONTENT_CHECK: {path!r} is not a ContentChecker")
    return checker_class()


@receiver(setting_changed)
def _forget_checker(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("CHAT_CONTENT_CHECK"):
        checker_configured.cache_clear()
