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
default is this one process's memory. With Redis unreachable the limits let requests
through (logged): an outage of the counters must not stop the service.
"""

import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from chatproject.client_ip import client_ip
from chatproject.errors import ApplicationError
from chatproject.metrics import LIMIT_REFUSALS

logger = logging.getLogger(__name__)

CONCURRENT_STREAMS = "concurrent_streams"
QUESTIONS_PER_MINUTE = "questions_per_minute"
QUESTIONS_PER_DAY = "questions_per_day"
ANSWER_TOKENS_PER_DAY = "answer_tokens_per_day"
LOGINS_PER_MINUTE = "logins_per_minute"
TICKET_EXCHANGES_PER_MINUTE = "ticket_exchanges_per_minute"

_MESSAGES = {
    CONCURRENT_STREAMS: "Too many answers at once; wait for one to finish.",
    QUESTIONS_PER_MINUTE: "Too many questions this minute.",
    QUESTIONS_PER_DAY: "Today's questions are used up.",
    ANSWER_TOKENS_PER_DAY: "Today's answer tokens are used up.",
    LOGINS_PER_MINUTE: "Too many logins from this address.",
    TICKET_EXCHANGES_PER_MINUTE: "Too many ticket exchanges from this address.",
}
# When a stream slot frees up cannot be known; answers take seconds.
_STREAM_RETRY_SECONDS = 5
_WINDOW_SECONDS = 60
# After a Redis failure, let requests through without asking it for this long, so that an
# outage costs each question one timeout at most every few seconds, not one each.
_REDIS_REST_SECONDS = 5.0
_REDIS_TIMEOUT_SECONDS = 0.5


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


@dataclass(frozen=True)
class UserLimits:
    """One user's limits; 0 means none."""

    concurrent_streams: int
    questions_per_minute: int
    questions_per_day: int
    answer_tokens_per_day: int


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


@dataclass(frozen=True)
class Admission:
    """An admitted question: its id in the counters (its stream slot, its minute entry)."""

    owner_id: int
    ticket: str
    day: str


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


def _today_and_seconds_left() -> tuple[str, int]:
    now = timezone.localtime()
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time())
    midnight = timezone.make_aware(midnight, now.tzinfo)
    return now.date().isoformat(), math.ceil((midnight - now).total_seconds())


def _lease_seconds() -> float:
    return settings.CHAT_REAP_AFTER_SECONDS


# --- Entry points -------------------------------------------------------------------------


def question_admit(*, owner_id: int, limits: UserLimits) -> Admission:
    """Count a question against its owner's limits and take a stream slot, or refuse it
    (`RateLimited`) without counting anything."""
    day, seconds_left = _today_and_seconds_left()
    admission = Admission(owner_id=owner_id, ticket=uuid.uuid4().hex, day=day)
    refusal = _counters().admit(admission, limits, seconds_left=seconds_left)
    if refusal is not None:
        raise RateLimited(*refusal)
    return admission


def admission_withdraw(admission: Admission) -> None:
    """The question was not saved after all (an unknown session...): it counts for nothing."""
    _counters().withdraw(admission)


def answer_settle(admission: Admission, *, answer_tokens: int) -> None:
    """The answer ended: free its stream slot and add its tokens to the owner's day."""
    _counters().settle(admission, answer_tokens=answer_tokens)


def admissions_renew(admissions: list[Admission]) -> None:
    """Renew the stream slots of answers this process is still generating."""
    if admissions:
        _counters().renew(admissions)


def address_admit(*, limit: str, address: str, per_minute: int) -> None:
    """Count a request from a client address against a per-minute limit, or refuse it."""
    if per_minute <= 0:
        return
    retry_after = _counters().hit(f"{limit}:{address}", per_minute=per_minute)
    if retry_after is not None:
        raise RateLimited(limit, retry_after)


# --- Redis --------------------------------------------------------------------------------

# A sliding window of the last 60 s: a sorted set of entries scored by time.
_LUA_WINDOW = """
local function window_full(key, now, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 60)
  if limit > 0 and redis.call('ZCARD', key) >= limit then
    local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    return math.ceil(oldest + 60 - now)
  end
  return nil
end
"""
# KEYS: streams, minute, day, tokens.
# ARGV: now, ticket, lease until, lease ttl, streams, per minute, per day, tokens per day,
#       seconds left today.
# The longest wait is named first: the day's limits, then the minute's, then the slots.
_LUA_ADMIT = (
    _LUA_WINDOW
    + """
local now, ticket = tonumber(ARGV[1]), ARGV[2]
local today_left = tonumber(ARGV[9])
local tokens_limit, day_limit = tonumber(ARGV[8]), tonumber(ARGV[7])
if tokens_limit > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= tokens_limit then
  return {'answer_tokens_per_day', today_left}
end
if day_limit > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= day_limit then
  return {'questions_per_day', today_left}
end
local wait = window_full(KEYS[2], now, tonumber(ARGV[6]))
if wait then
  return {'questions_per_minute', wait}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local streams = tonumber(ARGV[5])
if streams > 0 and redis.call('ZCARD', KEYS[1]) >= streams then
  return {'concurrent_streams', 0}
end
redis.call('ZADD', KEYS[1], ARGV[3], ticket)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now, ticket)
redis.call('EXPIRE', KEYS[2], 61)
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], today_left + 3600)
return nil
"""
)
# KEYS: window. ARGV: now, limit, entry.
_LUA_HIT = (
    _LUA_WINDOW
    + """
local wait = window_full(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait then
  return wait
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], 61)
return nil
"""
)


def _key(*parts: object) -> str:
    return ":".join([settings.CHAT_REDIS_PREFIX, "limits", *map(str, parts)])


class RedisCounters:
    """Counters shared by every process, each check one atomic script."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        )
        self._admit = self._redis.register_script(_LUA_ADMIT)
        self._hit = self._redis.register_script(_LUA_HIT)
        self._resting_until = 0.0

    def _keys(self, admission: Admission) -> list[str]:
        owner, day = admission.owner_id, admission.day
        return [
            _key("streams", owner),
            _key("minute", owner),
            _key("day", owner, day),
            _key("tokens", owner, day),
        ]

    def _call(self, what: str, run: Callable[[], object]) -> object:
        """Run a Redis call; on failure log it, let the request through, rest a while."""
        if time.monotonic() < self._resting_until:
            return None
        try:
            return run()
        except redis.RedisError:
            logger.warning("limits: Redis failed (%s); letting requests through", what,
                           exc_info=True)  # fmt: skip
            self._resting_until = time.monotonic() + _REDIS_REST_SECONDS
            return None

    def admit(
        self, admission: Admission, limits: UserLimits, *, seconds_left: int
    ) -> tuple[str, int] | None:
        now = time.time()
        args = [
            now, admission.ticket, now + _lease_seconds(), math.ceil(_lease_seconds()) + 60,
            limits.concurrent_streams, limits.questions_per_minute, limits.questions_per_day,
            limits.answer_tokens_per_day, seconds_left,
        ]  # fmt: skip
        reply = self._call("admit", lambda: self._admit(keys=self._keys(admission), args=args))
        if not reply:
            return None
        limit, wait = reply[0].decode(), int(reply[1])
        return limit, wait if limit != CONCURRENT_STREAMS else _STREAM_RETRY_SECONDS

    def withdraw(self, admission: Admission) -> None:
        streams, minute, day, _ = self._keys(admission)

        def run() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(streams, admission.ticket).zrem(minute, admission.ticket).decr(day)
            pipe.execute()

        self._call("withdraw", run)

    def settle(self, admission: Admission, *, answer_tokens: int) -> None:
        streams, _, _, tokens = self._keys(admission)

        def run() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(streams, admission.ticket)
            pipe.incrby(tokens, answer_tokens).expire(tokens, 2 * 24 * 3600)
            pipe.execute()

        self._call("settle", run)

    def renew(self, admissions: list[Admission]) -> None:
        lease_until = time.time() + _lease_seconds()

        def run() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for admission in admissions:
                streams = self._keys(admission)[0]
                pipe.zadd(streams, {admission.ticket: lease_until}, xx=True)
                pipe.expire(streams, math.ceil(_lease_seconds()) + 60)
            pipe.execute()

        self._call("renew", run)

    def hit(self, name: str, *, per_minute: int) -> int | None:
        key, now = _key("address", name), time.time()
        reply = self._call(
            "hit", lambda: self._hit(keys=[key], args=[now, per_minute, uuid.uuid4().hex])
        )
        return int(reply) if reply else None


# --- Django's cache (the embedded default: one process) ----------------------------------


class CacheCounters:
    """The same counters in Django's cache; each check under one lock, so atomic within
    the process (the embedded default has one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @staticmethod
    def _window(key: str, now: float) -> dict[str, float]:
        """The entries of the last 60 s, by id (a sliding window, as in Redis)."""
        return {entry: at for entry, at in cache.get(key, {}).items() if at > now - _WINDOW_SECONDS}

    @staticmethod
    def _wait(window: dict[str, float], now: float) -> int:
        return math.ceil(min(window.values()) + _WINDOW_SECONDS - now)

    def admit(
        self, admission: Admission, limits: UserLimits, *, seconds_left: int
    ) -> tuple[str, int] | None:
        owner, day, now = admission.owner_id, admission.day, time.time()
        with self._lock:
            if 0 < limits.answer_tokens_per_day <= cache.get(_key("tokens", owner, day), 0):
                return ANSWER_TOKENS_PER_DAY, seconds_left
            if 0 < limits.questions_per_day <= cache.get(_key("day", owner, day), 0):
                return QUESTIONS_PER_DAY, seconds_left
            minute = self._window(_key("minute", owner), now)
            if 0 < limits.questions_per_minute <= len(minute):
                return QUESTIONS_PER_MINUTE, self._wait(minute, now)
            streams = {t: until for t, until in cache.get(_key("streams", owner), {}).items()
                       if until > now}  # fmt: skip
            if 0 < limits.concurrent_streams <= len(streams):
                return CONCURRENT_STREAMS, _STREAM_RETRY_SECONDS
            streams[admission.ticket] = now + _lease_seconds()
            minute[admission.ticket] = now
            cache.set(_key("streams", owner), streams, None)
            cache.set(_key("minute", owner), minute, _WINDOW_SECONDS + 1)
            day_key = _key("day", owner, day)
            cache.set(day_key, cache.get(day_key, 0) + 1, seconds_left + 3600)
        return None

    def withdraw(self, admission: Admission) -> None:
        owner, day = admission.owner_id, admission.day
        with self._lock:
            self._slot_free(admission)
            minute_key = _key("minute", owner)
            minute = cache.get(minute_key, {})
            minute.pop(admission.ticket, None)
            cache.set(minute_key, minute, _WINDOW_SECONDS + 1)
            day_key = _key("day", owner, day)
            cache.set(day_key, max(0, cache.get(day_key, 0) - 1), 2 * 24 * 3600)

    def settle(self, admission: Admission, *, answer_tokens: int) -> None:
        tokens_key = _key("tokens", admission.owner_id, admission.day)
        with self._lock:
            self._slot_free(admission)
            cache.set(tokens_key, cache.get(tokens_key, 0) + answer_tokens, 2 * 24 * 3600)

    def _slot_free(self, admission: Admission) -> None:
        key = _key("streams", admission.owner_id)
        streams = cache.get(key, {})
        streams.pop(admission.ticket, None)
        cache.set(key, streams, None)

    def renew(self, admissions: list[Admission]) -> None:
        lease_until = time.time() + _lease_seconds()
        with self._lock:
            for admission in admissions:
                key = _key("streams", admission.owner_id)
                streams = cache.get(key, {})
                if admission.ticket in streams:
                    streams[admission.ticket] = lease_until
                    cache.set(key, streams, None)

    def hit(self, name: str, *, per_minute: int) -> int | None:
        key, now = _key("address", name), time.time()
        with self._lock:
            window = self._window(key, now)
            if len(window) >= per_minute:
                return self._wait(window, now)
            window[uuid.uuid4().hex] = now
            cache.set(key, window, _WINDOW_SECONDS + 1)
        return None


@functools.cache
def _counters() -> RedisCounters | CacheCounters:
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return CacheCounters()


@receiver(setting_changed)
def _forget_counters(*, setting: str, **kwargs: object) -> None:
    if setting == "REDIS_URL":
        _counters.cache_clear()


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
