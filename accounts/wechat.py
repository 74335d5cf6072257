"""WeChat's code2Session: a `wx.login` code in, the user's openid and session_key out.

https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/code2Session.html
WeChat answers HTTP 200 for errors too (`errcode`/`errmsg` in the body), sometimes with a
`text/plain` content type, so the body is parsed whatever the headers say. The app secret
travels in the query string: it is never logged (and `httpx`'s request log is kept below
INFO in settings), and neither is the session_key.
"""

import logging
from dataclasses import dataclass, field

import httpx
import orjson
from django.conf import settings

from chatproject.errors import ApplicationError

logger = logging.getLogger(__name__)

_PATH = "/sns/jscode2session"
_MAX_ID_LENGTH = 64  # User.openid / User.unionid

_INVALID_CODE = (
    "wechat_invalid_code",
    400,
    "The login code is invalid or used; call wx.login again.",
)
# errcode -> (code, HTTP status, message) for the refusals a client can act on.
_REFUSALS = {
    40029: _INVALID_CODE,  # invalid code (wrong, expired, or for another app)
    40163: _INVALID_CODE,  # code already used
    45011: ("wechat_rate_limited", 429, "Too many logins for this user; retry in a minute."),
    -1: ("wechat_busy", 503, "WeChat is busy; retry in a moment."),
}


@dataclass(frozen=True)
class WechatSession:
    openid: str
    session_key: str = field(repr=False)  # stays out of reprs, tracebacks and logs
    unionid: str = ""


def wechat_code2session(*, code: str) -> WechatSession:
    """Who holds this `wx.login` code, according to WeChat; an ApplicationError otherwise."""
    if not settings.WECHAT_APP_ID or not settings.WECHAT_APP_SECRET:
        raise ApplicationError(
            "wechat_not_configured", "WeChat login is not configured on this server.", status=503
        )
    return _session_from(_jscode2session_body(code))


def _jscode2session_body(code: str) -> dict:
    params = {
        "appid": settings.WECHAT_APP_ID,
        "secret": settings.WECHAT_APP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    try:
        response = httpx.get(
            settings.WECHAT_API_BASE + _PATH, params=params, timeout=settings.WECHAT_TIMEOUT_SECONDS
        )
    except httpx.TimeoutException:
        logger.warning("code2Session timed out after %ss", settings.WECHAT_TIMEOUT_SECONDS)
        raise ApplicationError(
            "wechat_timeout", "WeChat did not answer in time; retry.", status=504
        ) from None
    except httpx.HTTPError as exc:
        # The exception's request carries the secret in its URL: log the type only.
        logger.warning("code2Session request failed: %s", type(exc).__name__)
        raise _unavailable() from None
    if response.status_code != 200:
        logger.warning("code2Session answered HTTP %s", response.status_code)
        raise _unavailable()
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        logger.warning("code2Session answered something that is not a JSON object")
        raise _wechat_error()
    return body


def _session_from(body: dict) -> WechatSession:
    errcode = body.get("errcode") or 0
    if errcode:
        # errmsg carries WeChat's request id ("rid: ..."), which their support asks for.
        logger.warning(
            "code2Session refused: errcode=%s errmsg=%.200s", errcode, body.get("errmsg")
        )
        refusal = _REFUSALS.get(errcode) if isinstance(errcode, int) else None
        if refusal is None:
            raise _wechat_error()
        code, status, message = refusal
        raise ApplicationError(code, message, status=status)
    openid, session_key = body.get("openid"), body.get("session_key")
    unionid = body.get("unionid") or ""
    if not _is_id(openid) or not _is_id(session_key) or (unionid and not _is_id(unionid)):
        logger.warning("code2Session answer lacks a usable openid/session_key/unionid")
        raise _wechat_error()
    return WechatSession(openid=openid, session_key=session_key, unionid=unionid)


def _is_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH


def _unavailable() -> ApplicationError:
    return ApplicationError("wechat_unavailable", "Could not reach WeChat; retry.", status=502)


def _wechat_error() -> ApplicationError:
    return ApplicationError("wechat_error", "WeChat refused the login.", status=502)
