"""Limits: what one user, or one client address, may ask for.

Per user (settings `CHAT_LIMIT_*`, or the user's own values set by staff in the admin;
0 means no limit):
- concurrent streams: answers being generated at once, with a client attached or not. A
  slot is a lease that the generating process renews every `CHAT_CHECKPOINT_SECONDS`; it
  lapses `CHAT_REAP_AFTER_SECONDS` after its process stops renewing it (a process killed
  mid-answer holds no slot for ever);
- questions per minute (the last 60 seconds) and per day (the calendar day in `TIME_ZONE`);
- answer tokens per day: the completion tokens the model reported, else `tokens_estimate`
  of the answer's text. A day's last answer may go past the limit; the next question is
  refused.
Per client address: logins (dev and WeChat) and web-view ticket exchanges per minute.

A refusal is `RateLimited`: `429 rate_limited` with `Retry-After` and the limit's name.
Questions refused by a limit are not counted.

Counters live in Redis when `REDIS_URL` is set, shared by every process and changed
atomically (one Lua script per check); otherwise in Django's cache, which in the embedded
default is this one process's memory (chat/limit_counters.py). With Redis unreachable the
limits let requests through (logged): an outage of the counters must not stop the service.
"""

import math
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from chat.limit_counters import (
    ANSWER_TOKENS_PER_DAY,
    CONCURRENT_STREAMS,
    LOGINS_PER_MINUTE,
    QUESTIONS_PER_DAY,
    QUESTIONS_PER_MINUTE,
    TICKET_EXCHANGES_PER_MINUTE,
    Admission,
    UserLimits,
    counters,
)
from chatproject.client_ip import client_ip
from chatproject.errors import ApplicationError
from chatproject.metrics import LIMIT_REFUSALS

_MESSAGES = {
    CONCURRENT_STREAMS: "Too many answers at once; wait for one to finish.",
    QUESTIONS_PER_MINUTE: "Too many questions this minute.",
    QUESTIONS_PER_DAY: "Today's questions are used up.",
    ANSWER_TOKENS_PER_DAY: "Today's answer tokens are used up.",
    LOGINS_PER_MINUTE: "Too many logins from this address.",
    TICKET_EXCHANGES_PER_MINUTE: "Too many ticket exchanges from this address.",
}


class RateLimited(ApplicationError):
    def __init__(self, limit: str, retry_after: int) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            "rate_limited",
            f"{_MESSAGES[limit]} Retry in {retry_after} s.",
            status=429,
            extra={"limit": limit},
            headers={"Retry-After": str(retry_after)},
        )
        LIMIT_REFUSALS.labels(limit=limit).inc()


def user_limits(own: Sequence[int | None] = (None, None, None, None)) -> UserLimits:
    """The settings' limits, with a user's own values (None: the setting's) in their place,
    in `UserLimits`' order."""
    defaults = (
        settings.CHAT_LIMIT_CONCURRENT_STREAMS,
        settings.CHAT_LIMIT_QUESTIONS_PER_MINUTE,
        settings.CHAT_LIMIT_QUESTIONS_PER_DAY,
        settings.CHAT_LIMIT_ANSWER_TOKENS_PER_DAY,
    )
    return UserLimits(*(d if o is None else o for o, d in zip(own, defaults, strict=True)))


def tokens_estimate(text: str) -> int:
    """Tokens of a text the model did not count: one per CJK character (Chinese, Japanese,
    Korean script, full-width forms), one per four other characters, rounded up."""
    wide = sum(1 for char in text if _is_wide(char))
    return wide + math.ceil((len(text) - wide) / 4)


def _is_wide(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals, kana, ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x3FFFF  # CJK extensions
    )


# --- Calendar -----------------------------------------------------------------------------


# Today's date and when it ends (epoch seconds), worked out once a day, not per question.
_today: tuple[str, float] = ("", 0.0)


def _today_and_seconds_left() -> tuple[str, int]:
    global _today
    now = time.time()
    if now >= _today[1]:
        local = timezone.localtime()
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
        _today = (local.date().isoformat(), timezone.make_aware(midnight).timestamp())
    day, ends_at = _today
    return day, math.ceil(ends_at - now)


# --- Entry points -------------------------------------------------------------------------


def question_admit(*, owner_id: int, limits: UserLimits) -> Admission:
    """Count a question against its owner's limits and take a stream slot, or refuse it
    (`RateLimited`) without counting anything."""
    day, seconds_left = _today_and_seconds_left()
    admission = Admission(owner_id=owner_id, ticket=uuid.uuid4().hex, day=day)
    refusal = counters().admit(admission, limits, seconds_left=seconds_left)
    if refusal is not None:
        raise RateLimited(*refusal)
    return admission


def admission_withdraw(admission: Admission) -> None:
    """The question was not saved after all (an unknown session...): it counts for nothing."""
    counters().withdraw(admission)


def answer_settle(admission: Admission, *, answer_tokens: int) -> None:
    """The answer ended: free its stream slot and add its tokens to the owner's day."""
    counters().settle(admission, answer_tokens=answer_tokens)


def admissions_renew(admissions: list[Admission]) -> None:
    """Renew the stream slots of answers this process is still generating."""
    counters().renew(admissions)


def address_admit(*, limit: str, address: str, per_minute: int) -> None:
    """Count a request from a client address against a per-minute limit, or refuse it."""
    if per_minute <= 0:
        return
    retry_after = counters().hit(f"{limit}:{address}", per_minute=per_minute)
    if retry_after is not None:
        raise RateLimited(limit, retry_after)


# --- DRF views: per client address ----------------------------------------------------------


class AddressThrottle(BaseThrottle):
    """DRF's throttle hook for a per-address limit: `limit` names it, `setting` holds its
    value per minute. Refuses with `RateLimited` itself, so the answer names the limit."""

    limit: str
    setting: str

    def allow_request(self, request: Request, view: APIView) -> bool:
        address_admit(
            limit=self.limit,
            address=client_ip(request._request),
            per_minute=getattr(settings, self.setting),
        )
        return True


class LoginThrottle(AddressThrottle):
    limit, setting = LOGINS_PER_MINUTE, "CHAT_LIMIT_LOGINS_PER_IP_PER_MINUTE"


class TicketExchangeThrottle(AddressThrottle):
    limit, setting = TICKET_EXCHANGES_PER_MINUTE, "CHAT_LIMIT_TICKET_EXCHANGES_PER_IP_PER_MINUTE"
