"""The counters behind chat/limits.py: in Redis when `REDIS_URL` is set (shared by every
process, each check one atomic Lua script), else in Django's cache (the embedded default:
this one process, each check under one lock).

Every question admitted has a ticket (a random id): its entry in the stream slots (a sorted
set scored by when its lease lapses) and in the last minute's questions (scored by when it
was asked). A day's questions and answer tokens are plain counters keyed by the date.
"""

import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

CONCURRENT_STREAMS = "concurrent_streams"
QUESTIONS_PER_MINUTE = "questions_per_minute"
QUESTIONS_PER_DAY = "questions_per_day"
ANSWER_TOKENS_PER_DAY = "answer_tokens_per_day"
LOGINS_PER_MINUTE = "logins_per_minute"
TICKET_EXCHANGES_PER_MINUTE = "ticket_exchanges_per_minute"

# When a stream slot frees up cannot be known; answers take seconds.
_STREAM_RETRY_SECONDS = 5
_WINDOW_SECONDS = 60
# After a Redis failure, let requests through without asking it for this long, so that an
# outage costs each question one timeout at most every few seconds, not one each.
_REDIS_REST_SECONDS = 5.0
_REDIS_TIMEOUT_SECONDS = 0.5
_DAY_TTL_SECONDS = 2 * 24 * 3600


@dataclass(frozen=True)
class UserLimits:
    """One user's limits; 0 means none."""

    concurrent_streams: int
    questions_per_minute: int
    questions_per_day: int
    answer_tokens_per_day: int


@dataclass(frozen=True)
class Admission:
    """An admitted question: its id in the counters (its stream slot, its minute entry)."""

    owner_id: int
    ticket: str
    day: str


def _lease_seconds() -> float:
    return settings.CHAT_REAP_AFTER_SECONDS


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


# KEYS: streams, tokens. ARGV: ticket, answer tokens, tokens ttl.
_LUA_SETTLE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return nil
"""


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
        self._settle = self._redis.register_script(_LUA_SETTLE)
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
        args = [admission.ticket, answer_tokens, _DAY_TTL_SECONDS]
        self._call("settle", lambda: self._settle(keys=[streams, tokens], args=args))

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
            cache.set(day_key, max(0, cache.get(day_key, 0) - 1), _DAY_TTL_SECONDS)

    def settle(self, admission: Admission, *, answer_tokens: int) -> None:
        tokens_key = _key("tokens", admission.owner_id, admission.day)
        with self._lock:
            self._slot_free(admission)
            cache.set(tokens_key, cache.get(tokens_key, 0) + answer_tokens, _DAY_TTL_SECONDS)

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
def counters() -> RedisCounters | CacheCounters:
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return CacheCounters()


@receiver(setting_changed)
def _forget_counters(*, setting: str, **kwargs: object) -> None:
    if setting == "REDIS_URL":
        counters.cache_clear()
