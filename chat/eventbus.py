"""What crosses server processes when `REDIS_URL` is set: event logs, stops, attachment.

- An answer's event log is mirrored to a Redis stream `<prefix>:events:<record id>` (id
  `<event id>-0`) when a client may need it on another process: as soon as its last local
  client drops, or when another process asks for it (`mirror` on the control channel) for
  a client that resumed there. An answer whose client stays attached costs Redis nothing.
  Frames are copied in small batches by one task per answer, off the per-token path.
- `POST .../stop` on any process publishes `stop` on `<prefix>:control`; the generating
  process listens.
- A client reading the log from another process keeps `<prefix>:attached:<id>` alive,
  so the generating process does not take the answer for abandoned.

Without Redis (the embedded default) there is one process and none of this is needed.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from django.conf import settings

from chat import events
from chat.event_log import EventLog

logger = logging.getLogger(__name__)

_MIRROR_BATCH_SECONDS = 0.02  # a resumer on another process lags at most this much
_LIVE_LOG_TTL_SECONDS = 3600  # safety net should a process die mid-answer
_ATTACH_TTL_SECONDS = 10
_ATTACH_REFRESH_SECONDS = 3
_MIRROR_REQUEST_WAIT_SECONDS = 1.5
_MAX_CONNECTIONS = 1000  # blocking readers hold one each; beyond this, callers wait

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
            settings.REDIS_URL, max_connections=_MAX_CONNECTIONS, timeout=10
        )
        redis = aioredis.Redis(connection_pool=pool)
        _clients[loop] = redis
    return redis


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
            await pipe.execute()
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


async def read_log(record_id: int, *, after: int, ping_seconds: float) -> AsyncIterator[bytes]:
    """Frames after event id `after`, replayed then live, ending with `[DONE]`.

    Yields `events.PING_FRAME` after each quiet `ping_seconds`.
    """
    redis, key, last_id = client(), log_key(record_id), f"{after}-0"
    refreshed_at, block_ms = 0.0, None  # the first read does not wait
    while True:
        if time.monotonic() - refreshed_at > _ATTACH_REFRESH_SECONDS:
            await redis.set(attached_key(record_id), b"1", ex=_ATTACH_TTL_SECONDS)
            refreshed_at = time.monotonic()
        reply = await redis.xread({key: last_id}, count=500, block=block_ms)
        if not reply:
            ended = await _log_ended(redis, key)
            if ended is not None:
                # Expired, or ended before the client's id: it has every event there is.
                if ended:
                    yield events.DONE_FRAME
                await redis.delete(attached_key(record_id))
                return
            if block_ms is not None:
                yield events.PING_FRAME
            block_ms = int(ping_seconds * 1000)
            continue
        for entry_id, fields in reply[0][1]:
            last_id = entry_id
            frame = fields[b"f"]
            yield frame
            if frame == events.DONE_FRAME:
                await redis.delete(attached_key(record_id))
                return


async def _log_ended(redis: aioredis.Redis, key: str) -> bool | None:
    """True if the log ends with `[DONE]`, False if it is gone, None if still growing."""
    last = await redis.xrevrange(key, count=1)
    if not last:
        return False
    return True if last[0][1][b"f"] == events.DONE_FRAME else None
