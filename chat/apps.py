from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = _("Chat")

    def ready(self) -> None:
        from chat import checks  # noqa: F401  (registers them)
        from chat.dashboard import sqlite_percentile_register

        # After migrate has made this app's permissions (auth's own post_migrate handler
        # runs first): keep the moderator group's permissions as the code says.
        post_migrate.connect(_moderator_group_sync, sender=self)
        connection_created.connect(sqlite_percentile_register)


def _moderator_group_sync(**kwargs: object) -> None:
    from chat.moderation import moderator_group_sync  # models are not ready at import time

    moderator_group_sync()
