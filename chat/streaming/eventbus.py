"""What crosses server processes when `REDIS_URL` is set: event logs, stops, attachment.

- An answer's event log is mirrored to a Redis stream `<prefix>:events:<record id>` (id
  `<event id>-0`) when a client may need it on another process: as soon as its last local
  client drops, or when another process asks for it (`mirror` on the control channel) for
  a client that resumed there. An answer whose client stays attached costs Redis nothing.
  Frames are copied in small batches by one task per answer, off the per-token path.
- `POST .../stop` on any process publishes `stop` on `<prefix>:control`; the generating
  process listens.
- A client reading the log from another process keeps `<prefix>:attached:<id>` alive,
  so the generating process does not take the answer for abandoned. Its blocking reads
  stay well within the client's socket timeout, however long the model is silent; if the
  generating process dies, the reader's process ends the log for every reader
  (`log_end`, called from `chat.streaming.lifecycle.answer_end_if_lost`).

Without Redis (the embedded default) there is one process and none of this is needed.
"""

import asyncio
import enum
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import ResponseError, WatchError

from chat.streaming import events
from chat.streaming.event_log import EventLog

logger = logging.getLogger(__name__)

_MIRROR_BATCH_SECONDS = 0.02  # a resumer on another process lags at most this much
_LIVE_LOG_TTL_SECONDS = 3600  # safety net should a process die mid-answer
_ATTACH_TTL_SECONDS = 10
_ATTACH_REFRESH_SECONDS = 3
_MIRROR_REQUEST_WAIT_SECONDS = 1.5
_MAX_CONNECTIONS = 1000  # blocking readers hold one each; beyond this, callers wait
# A Redis call with no reply for this long fails (set here, not left to the library: redis-py
# 8 made it 5 s). A blocking read asks Redis to answer within half of it, so that a quiet
# log never looks like a dead connection; a REDIS_URL's own `socket_timeout` is honoured.
_SOCKET_TIMEOUT_SECONDS = 5.0
# A reader whose log has been quiet this long asks whether the answer's process is gone.
_QUIET_CHECK_SECONDS = 1.0

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = (
    weakref.WeakKeyDictionary()
)


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    redis = _clients.get(loop)
    if redis is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=_MAX_CONNECTIONS,
            timeout=10,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
        )
        redis = aioredis.Redis(connection_pool=pool)
        _clients[loop] = redis
    return redis


def _longest_block_seconds(redis: aioredis.Redis) -> float:
    timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
    return (timeout or _SOCKET_TIMEOUT_SECONDS) / 2


def _key(name: str) -> str:
    # The prefix keeps deployments (and test runs) that share one Redis apart.
    return f"{settings.CHAT_REDIS_PREFIX}:{name}"


def log_key(record_id: int) -> str:
    return _key(f"events:{record_id}")


def attached_key(record_id: int) -> str:
    return _key(f"attached:{record_id}")


def control_channel() -> str:
    return _key("control")


# --- Writing: the generating process ------------------------------------------------------


async def mirror_log(record_id: int, log: EventLog, wait: Callable) -> None:
    """Copy a generation's frames to Redis as they appear, until its `[DONE]`.

    `wait(after=n)` returns once the log has more than n frames or has ended.
    """
    key, sent = log_key(record_id), 0
    while True:
        await wait(after=sent)
        pending = log.frames_after(sent)
        if pending:
            pipe = client().pipeline(transaction=False)
            for offset, frame in enumerate(pending, start=sent + 1):
                pipe.xadd(key, {"f": frame}, id=f"{offset}-0")
            pipe.expire(key, _LIVE_LOG_TTL_SECONDS)
            try:
                await pipe.execute()
            except ResponseError:
                if await _log_ending(client(), key, f"{sent}-0") is not _Ending.UNREAD:
                    raise
                # A reader on another process found this answer's heartbeat stale and
                # ended its log (`log_end`): the log stays as they ended it.
                logger.warning("record %s: its log was ended by another process", record_id)
                return
            sent += len(pending)
        if log.ended and sent == len(log):
            await client().expire(key, settings.CHAT_REPLAY_TTL_SECONDS)
            return
        await asyncio.sleep(_MIRROR_BATCH_SECONDS)


async def publish_stop(record_id: int) -> None:
    await client().publish(control_channel(), f"stop:{record_id}")


async def listen_for_control(
    *, on_stop: Callable[[int], None], on_mirror: Callable[[int], None]
) -> None:
    """Run forever: act on every `stop` and `mirror` request published by any process."""
    handlers = {b"stop": on_stop, b"mirror": on_mirror}
    while True:
        try:
            pubsub = client().pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(control_channel())
            async for message in pubsub.listen():
                if message and message.get("type") == "message":
                    command, _, record_id = message["data"].partition(b":")
                    if command in handlers and record_id.isdigit():
                        handlers[command](int(record_id))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("stop listener lost Redis; reconnecting")
            await asyncio.sleep(1)


async def has_remote_reader(record_id: int) -> bool:
    return bool(await client().exists(attached_key(record_id)))


# --- Reading: any process -----------------------------------------------------------------


async def has_log(record_id: int) -> bool:
    return bool(await client().exists(log_key(record_id)))


async def log_found(record_id: int) -> bool:
    """Whether the answer's log is in Redis, asking its process to put it there if not."""
    if await has_log(record_id):
        return True
    await client().publish(control_channel(), f"mirror:{record_id}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _MIRROR_REQUEST_WAIT_SECONDS
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        if await has_log(record_id):
            return True
    return False


async def read_log(
    record_id: int, *, after: int, ping_seconds: float, on_quiet: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """Frames after event id `after`, replayed then live, ending with `[DONE]`.

    While the log is quiet, yields `events.PING_FRAME` after each `ping_seconds` without a
    frame, and awaits `on_quiet()` about once a second (it may end the log: `log_end`).
    """
    redis, key, last_id = client(), log_key(record_id), f"{after}-0"
    longest_block = _longest_block_seconds(redis)
    refreshed_at = checked_at = 0.0
    last_frame_at = pinged_at = time.monotonic()
    block_ms = None  # no waiting while there are frames to catch up on
    while True:
        if time.monotonic() - refreshed_at > _ATTACH_REFRESH_SECONDS:
            await redis.set(attached_key(record_id), b"1", ex=_ATTACH_TTL_SECONDS)
            refreshed_at = time.monotonic()
        reply = await redis.xread({key: last_id}, count=500, block=block_ms)
        if reply:
            for entry_id, fields in reply[0][1]:
                last_id = entry_id
                frame = fields[b"f"]
                yield frame
                if frame == events.DONE_FRAME:
                    await redis.delete(attached_key(record_id))
                    return
            last_frame_at = pinged_at = time.monotonic()
            block_ms = None
            continue
        ending = await _log_ending(redis, key, last_id)
        if ending is _Ending.UNREAD:
            continue  # the log grew between the two reads
        if ending is not _Ending.GROWING:
            # Ended before the client's id (it has every event there is), or expired.
            if ending is _Ending.ENDED:
                yield events.DONE_FRAME
            await redis.delete(attached_key(record_id))
            return
        now = time.monotonic()
        if now - pinged_at >= ping_seconds:
            yield events.PING_FRAME
            pinged_at = now
        if now - max(last_frame_at, checked_at) >= _QUIET_CHECK_SECONDS:
            await on_quiet()
            checked_at = time.monotonic()
        check_due = max(last_frame_at, checked_at) + _QUIET_CHECK_SECONDS
        next_due = min(pinged_at + ping_seconds, check_due)
        block_ms = max(1, int(min(next_due - time.monotonic(), longest_block) * 1000))


class _Ending(enum.Enum):
    GROWING = "growing"  # nothing after the reader's id yet
    UNREAD = "unread"  # frames after the reader's id arrived meanwhile
    ENDED = "ended"  # ends with `[DONE]`, at or before the reader's id
    GONE = "gone"  # expired, or never mirrored


async def _log_ending(redis: aioredis.Redis, key: str, last_id: bytes | str) -> _Ending:
    """Where a log stands after a read past `last_id` brought nothing."""
    last = await redis.xrevrange(key, count=1)
    if not last:
        return _Ending.GONE
    entry_id, fields = last[0]
    if _event_id(entry_id) > _event_id(last_id):
        return _Ending.UNREAD
    return _Ending.ENDED if fields[b"f"] == events.DONE_FRAME else _Ending.GROWING


def _event_id(entry_id: bytes | str) -> int:
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(entry_id.partition("-")[0])


# --- Ending a log whose process is gone ---------------------------------------------------


async def log_text(record_id: int) -> str:
    """The answer text in a log: what its process had generated when it last mirrored."""
    entries = await client().xrange(log_key(record_id))
    return "".join(events.delta_text(fields[b"f"]) for _, fields in entries)


async def log_end(record_id: int, endings: list[tuple[str, dict]]) -> bool:
    """Append these events and `[DONE]` to a log that has not ended; False if it had, or
    if it changed meanwhile (its process was alive after all, or another reader ended it).
    """
    key = log_key(record_id)
    async with client().pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)
            last = await pipe.xrevrange(key, count=1)
            if not last or last[0][1][b"f"] == events.DONE_FRAME:
                return False
            next_id = _event_id(last[0][0]) + 1
            pipe.multi()
            for event_id, (event_type, payload) in enumerate(endings, start=next_id):
                frame = events.event_frame(event_id, event_type, payload)
                pipe.xadd(key, {"f": frame}, id=f"{event_id}-0")
            pipe.xadd(key, {"f": events.DONE_FRAME}, id=f"{next_id + len(endings)}-0")
            pipe.expire(key, settings.CHAT_REPLAY_TTL_SECONDS)
            await pipe.execute()
        except WatchError:
            return False
    return True
