"""WeChat's msgSecCheck v2: one text, the user's openid and a scene in; suggest, label and
trace id out.

https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/sec-center/sec-check/msgSecCheck.html
POST {WECHAT_API_BASE}/wxa/msg_sec_check?access_token=... with `version` 2, `openid`,
`scene` (CHAT_CONTENT_CHECK_SCENE) and `content` (at most 2500 characters). The answer's
`result` holds the overall `suggest` (pass / review / risky) and `label`. The openid must be
of a user who opened the mini-program in the last two hours, as a user asking a question
has. A token WeChat refuses is replaced once and the check asked again.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat.content_check.checkers import (
    PASS,
    REVIEW,
    RISKY,
    CheckUnavailable,
    ContentChecker,
    Side,
    Subject,
    Verdict,
)
from chat.content_check.wechat_token import WechatRefusal, access_token, wechat_post

MSG_SEC_CHECK_PATH = "/wxa/msg_sec_check"
# invalid credential, expired token, token missing: ask again with a new token.
_TOKEN_REFUSED = {40001, 42001, 41001, 40014}
_SUGGESTS = {PASS, REVIEW, RISKY}


class WechatMsgSecCheck(ContentChecker):
    def __init__(self) -> None:
        if not settings.WECHAT_APP_ID or not settings.WECHAT_APP_SECRET:
            raise ImproperlyConfigured(
                "CHAT_CONTENT_CHECK=wechat needs WECHAT_APP_ID and WECHAT_APP_SECRET"
            )

    async def check(self, text: str, *, side: Side, subject: Subject) -> Verdict:
        if not subject.openid:
            raise CheckUnavailable("msgSecCheck needs an openid; this user has none")
        body = {
            "version": 2,
            "openid": subject.openid,
            "scene": settings.CHAT_CONTENT_CHECK_SCENE,
            "content": text,
        }
        token = await access_token()
        try:
            answer = await _msg_sec_check(body, token)
        except WechatRefusal as refusal:
            if refusal.errcode not in _TOKEN_REFUSED:
                raise
            answer = await _msg_sec_check(body, await access_token(refused=token))
        return _verdict_from(answer)


async def _msg_sec_check(body: dict, token: str) -> dict:
    return await wechat_post(
        MSG_SEC_CHECK_PATH, body, what="msgSecCheck", params={"access_token": token}
    )


def _verdict_from(answer: dict) -> Verdict:
    result = answer.get("result")
    suggest = result.get("suggest") if isinstance(result, dict) else None
    if suggest not in _SUGGESTS:
        raise CheckUnavailable("msgSecCheck answered without a result.suggest")
    label = result.get("label")
    trace_id = answer.get("trace_id")
    return Verdict(
        suggest=suggest,
        label=label if isinstance(label, int) else None,
        trace_id=trace_id[:64] if isinstance(trace_id, str) else "",
    )
