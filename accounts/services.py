"""Writes on users: log in (dev openid or WeChat code), edit one's profile."""

from accounts.models import User
from accounts.wechat import wechat_code2session
from chatproject.errors import ApplicationError


def user_get_or_create_by_openid(
    *, openid: str, unionid: str = "", session_key: str = ""
) -> tuple[User, bool]:
    user, created = User.objects.get_or_create(
        openid=openid,
        defaults={
            "username": f"wx_{openid}",
            "unionid": unionid,
            "wechat_session_key": session_key,
        },
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        return user, True
    changed = {"unionid": unionid, "wechat_session_key": session_key}
    changed = {name: v for name, v in changed.items() if v and getattr(user, name) != v}
    if changed:
        for name, value in changed.items():
            setattr(user, name, value)
        user.save(update_fields=list(changed))
    return user, False


def user_login_by_openid(
    *, openid: str, unionid: str = "", session_key: str = ""
) -> tuple[User, bool]:
    """The user behind an openid, created on first login; a disabled user is refused."""
    user, created = user_get_or_create_by_openid(
        openid=openid, unionid=unionid, session_key=session_key
    )
    if not user.is_active:
        # Their token would be refused anyway; say why instead of handing out a dud.
        raise ApplicationError("account_disabled", "This account is disabled.", status=403)
    return user, created


def user_login_by_wechat_code(*, code: str) -> tuple[User, bool]:
    # WeChat is asked outside any transaction: a slow answer must hold no database lock.
    session = wechat_code2session(code=code)
    return user_login_by_openid(
        openid=session.openid, unionid=session.unionid, session_key=session.session_key
    )


def user_profile_update(
    *, user: User, nickname: str | None = None, avatar_url: str | None = None
) -> User:
    """Set the fields given (None leaves a field as it is; "" clears it)."""
    changed = {"nickname": nickname, "avatar_url": avatar_url}
    changed = {name: v for name, v in changed.items() if v is not None}
    for name, value in changed.items():
        setattr(user, name, value)
    if changed:
        user.save(update_fields=list(changed))
    return user
