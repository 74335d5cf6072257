"""WeChat's server-side access token, from `stable_token`, shared and renewed in time.

https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-access-token/getStableAccessToken.html
The token lives 7200 s; it is renewed WECHAT_TOKEN_REFRESH_MARGIN_SECONDS before it
expires. With REDIS_URL it is kept in Redis and renewed by one process at a time (a lock
key, `SET NX PX`; the others wait for the new token to appear): WeChat counts the calls,
and a storm of them at expiry helps nobody. Without Redis, one process renews under an
asyncio lock. A token WeChat refused (errcode 40001/42001) is replaced with
`force_refresh`, once, by whichever process sees it first.

Neither the app secret nor the token is ever logged.
"""

import asyncio
import logging
import secrets
import time
import weakref
from dataclasses import dataclass, field

import aiohttp
import orjson
from django.conf import settings

from chat.content_check.checkers import CheckUnavailable
from chat.streaming import eventbus
from chatproject import metrics

logger = logging.getLogger(__name__)

STABLE_TOKEN_PATH = "/cgi-bin/stable_token"
_LOCK_MS = 15_000  # a refresh holding the lock longer has died; its HTTP call timed out first
_POLL_SECONDS = 0.02  # how often a process waiting for another's refresh looks again
_JSON = {"Content-Type": "application/json"}
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float  # wall-clock (time.time()), comparable between processes

    def usable(self, *, refused: str) -> bool:
        margin = settings.WECHAT_TOKEN_REFRESH_MARGIN_SECONDS
        return self.value != refused and self.expires_at - margin > time.time()


_memory: _Token | None = None
_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]" = (
    weakref.WeakKeyDictionary()
)
_local_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = (
    weakref.WeakKeyDictionary()
)


def wechat_http() -> aiohttp.ClientSession:
    """This event loop's client for WeChat's server APIs, its connections kept alive.
    aiohttp, not httpx: ~0.5 ms of CPU per call against ~3-4 ms (bench/content_check.py),
    and an answer makes several calls a second."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        timeout = aiohttp.ClientTimeout(total=settings.CHAT_CONTENT_CHECK_TIMEOUT_SECONDS)
        session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        _sessions[loop] = session
    return session


async def wechat_http_close() -> None:
    """Close this event loop's client (at shutdown)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


async def access_token(*, refused: str = "") -> str:
    """A token with time left; `refused`: one WeChat just refused, which is replaced."""
    global _memory
    if _memory is not None and _memory.usable(refused=refused):
        return _memory.value
    if eventbus.enabled():
        token = await _shared_token(refused)
    else:
        token = await _local_token(refused)
    _memory = token
    return token.value


async def _local_token(refused: str) -> _Token:
    loop = asyncio.get_running_loop()
    lock = _local_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if _memory is not None and _memory.usable(refused=refused):
            return _memory  # renewed while this one waited
        return await _stable_token(force=bool(refused))


def _redis_key(name: str) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:wechat:{name}"


async def _shared_token(refused: str) -> _Token:
    redis = eventbus.client()
    key, lock_key = _redis_key("access_token"), _redis_key("access_token_lock")
    deadline = time.monotonic() + 2 * settings.CHAT_CONTENT_CHECK_TIMEOUT_SECONDS + 1
    while True:
        stored = _decoded(await redis.get(key))
        if stored is not None and stored.usable(refused=refused):
            return stored
        owner = secrets.token_hex(8)
        if await redis.set(lock_key, owner, nx=True, px=_LOCK_MS):
            try:
                stored = _decoded(await redis.get(key))  # renewed just before the lock?
                if stored is not None and stored.usable(refused=refused):
                    return stored
                token = await _stable_token(force=bool(refused))
                record = {"value": token.value, "expires_at": token.expires_at}
                await redis.set(key, orjson.dumps(record), pxat=int(token.expires_at * 1000))
                return token
            finally:
                await redis.eval(_UNLOCK, 1, lock_key, owner)
        if time.monotonic() > deadline:
            raise CheckUnavailable("waited too long for another process's token refresh")
        await asyncio.sleep(_POLL_SECONDS)


def _decoded(raw: bytes | None) -> _Token | None:
    if not raw:
        return None
    try:
        record = orjson.loads(raw)
        return _Token(value=str(record["value"]), expires_at=float(record["expires_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


async def _stable_token(*, force: bool) -> _Token:
    if not settings.WECHAT_APP_ID or not settings.WECHAT_APP_SECRET:
        raise CheckUnavailable("WECHAT_APP_ID and WECHAT_APP_SECRET are needed for msgSecCheck")
    body = {
        "grant_type": "client_credential",
        "appid": settings.WECHAT_APP_ID,
        "secret": settings.WECHAT_APP_SECRET,
        "force_refresh": force,
    }
    asked_at = time.time()
    answer = await wechat_post(STABLE_TOKEN_PATH, body, what="stable_token")
    value, lifetime = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(value, str) or not value or not isinstance(lifetime, int) or lifetime <= 0:
        raise CheckUnavailable("stable_token answered without a usable access_token")
    metrics.WECHAT_TOKEN_REFRESHES.inc()
    logger.info("WeChat access token renewed (force=%s), valid %d s", force, lifetime)
    return _Token(value=value, expires_at=asked_at + lifetime)


async def wechat_post(path: str, body: dict, *, what: str, params: dict | None = None) -> dict:
    """POST JSON to one of WeChat's server APIs under WECHAT_API_BASE: its JSON answer with
    errcode 0 (or none), else CheckUnavailable. WeChat answers HTTP 200 for its errors."""
    url = settings.WECHAT_API_BASE + path
    try:
        async with wechat_http().post(
            url, params=params, data=orjson.dumps(body), headers=_JSON
        ) as response:
            status, content = response.status, await response.read()
    except TimeoutError:
        raise CheckUnavailable(f"{what} timed out") from None
    except aiohttp.ClientError as exc:
        # The exception's URL may carry the token: the type only.
        raise CheckUnavailable(f"{what} request failed: {type(exc).__name__}") from None
    if status != 200:
        raise CheckUnavailable(f"{what} answered HTTP {status}")
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise CheckUnavailable(f"{what} answered something that is not a JSON object")
    errcode = answer.get("errcode") or 0
    if errcode:
        raise WechatRefusal(what, errcode, str(answer.get("errmsg", ""))[:200])
    return answer


class WechatRefusal(CheckUnavailable):
    """errcode != 0; errmsg carries WeChat's request id (`rid`), which their support asks for."""

    def __init__(self, what: str, errcode: object, errmsg: str) -> None:
        super().__init__(f"{what} refused: errcode={errcode} errmsg={errmsg}")
        self.errcode = errcode
