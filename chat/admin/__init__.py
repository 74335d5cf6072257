"""Staff moderation in Django's admin: the records (`records`: list, review queue,
moderation actions, CSV export), the sessions (`sessions`), their list filters
(`filters`), the moderator's form (`forms`), a record's review page (`review`) and the
dashboard page (`dashboard_views`). Importing the package registers the model admins."""

from chat.admin import records, sessions  # noqa: F401  (registers them)
