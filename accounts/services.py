"""Writes on users."""

from accounts.models import User


def user_get_or_create_by_openid(*, openid: str, unionid: str = "") -> tuple[User, bool]:
    user, created = User.objects.get_or_create(
        openid=openid, defaults={"username": f"wx_{openid}", "unionid": unionid}
    )
    if user.pk and not created and unionid and user.unionid != unionid:
        user.unionid = unionid
        user.save(update_fields=["unionid"])
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user, created
