"""Users are known by their WeChat openid; staff keep username/password for the admin."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


def _own_limit(what: str, setting: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        what,
        null=True,
        blank=True,
        help_text=format_lazy(
            _("Empty: the server's default ({setting}). 0: no limit for this user."),
            setting=setting,
        ),
    )


class User(AbstractUser):
    # NULL for staff accounts without WeChat; NULLs never collide in a unique index.
    openid = models.CharField("openid", max_length=64, unique=True, null=True, blank=True)
    unionid = models.CharField("unionid", max_length=64, blank=True, db_index=True)
    nickname = models.CharField(_("nickname"), max_length=64, blank=True)
    avatar_url = models.URLField(_("avatar URL"), max_length=500, blank=True)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    # code2Session's session_key, refreshed at every WeChat login. Kept for server-side
    # checks of signed/encrypted wx.* payloads; never sent to any client, hidden from the admin.
    wechat_session_key = models.CharField(max_length=128, blank=True, editable=False)
    # This user's own limits (chat/limits.py), set by staff: empty means the setting's.
    limit_concurrent_streams = _own_limit(_("answers at once"), "CHAT_LIMIT_CONCURRENT_STREAMS")
    limit_questions_per_minute = _own_limit(
        _("questions per minute"), "CHAT_LIMIT_QUESTIONS_PER_MINUTE"
    )
    limit_questions_per_day = _own_limit(_("questions per day"), "CHAT_LIMIT_QUESTIONS_PER_DAY")
    limit_answer_tokens_per_day = _own_limit(
        _("answer tokens per day"), "CHAT_LIMIT_ANSWER_TOKENS_PER_DAY"
    )

    def __str__(self) -> str:
        return self.nickname or self.openid or self.username

    @property
    def created_at(self):
        return self.date_joined


class AccessToken(models.Model):
    """One issued bearer token: the signed string carries `key_id`, this row says if it lives."""

    key_id = models.CharField(_("key id"), max_length=32, unique=True)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="access_tokens", verbose_name=_("user")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("access token")
        verbose_name_plural = _("access tokens")
        indexes = [models.Index(fields=["user", "expires_at"])]

    def __str__(self) -> str:
        return gettext("token %(key)s… of user %(user)s") % {
            "key": self.key_id[:8],
            "user": self.user_id,
        }


class WebviewTicket(models.Model):
    """A short-lived, single-use ticket that lets a web-view page log in as the user.

    Only a hash is stored: a leaked database row cannot be exchanged for a token.
    """

    digest = models.CharField(_("digest"), max_length=64, unique=True)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="webview_tickets", verbose_name=_("user")
    )
    # The token that asked for it: the ticket is void once that token is revoked.
    token = models.ForeignKey(
        AccessToken,
        on_delete=models.CASCADE,
        related_name="webview_tickets",
        verbose_name=_("access token"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("web-view ticket")
        verbose_name_plural = _("web-view tickets")

    def __str__(self) -> str:
        return gettext("web-view ticket %(id)s of user %(user)s") % {
            "id": self.pk,
            "user": self.user_id,
        }
