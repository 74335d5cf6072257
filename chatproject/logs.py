"""Log lines: one JSON object a line in production, plain text under DEBUG; each with the
user and record ids where known, and nothing secret.

- Ids come from the request's context (`log_context`): the stream view and the token
  authentication set them, and an answer's generation task inherits them.
- Nothing here logs a bearer token, the WeChat secret, a session_key, or the text of a
  question or an answer; `redact` is the safety net for what slips through anyway. It runs
  on each line as formatted (a filter on the record would miss the traceback, which the
  formatter writes later): signed tokens, `Bearer ...`, the values of secret-sounding keys
  (`secret=`, `session_key`, `api_key`, `password`, `ticket`, `token`), and the configured
  secrets themselves, wherever they appear.
"""

import logging
import os
import re
from contextvars import ContextVar
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from pythonjsonlogger.orjson import OrjsonFormatter

_user_id: ContextVar[int | None] = ContextVar("log_user_id", default=None)
_record_id: ContextVar[int | None] = ContextVar("log_record_id", default=None)

REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    # Our bearer tokens: a key id and its signature (accounts/tokens.py).
    (re.compile(r"\b[0-9a-f]{32}:[A-Za-z0-9_-]{43}\b"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+"), rf"\1 {REDACTED}"),
    (
        re.compile(
            r"(?i)\b(secret|app_?secret|session_?key|api_?key|password|passwd|access_token"
            r"|ticket|token)(\\?[\"']?\s*[:=]\s*\\?[\"']?)([^\s\"'\\&,;)}\]]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
)
# Configured secrets shorter than this are not looked for (too likely to be ordinary text).
_SECRET_MIN_LENGTH = 8


def log_context(*, user_id: int | None = None, record_id: int | None = None) -> None:
    """Name the user and record that the current request (and the tasks it starts) is for."""
    if user_id is not None:
        _user_id.set(user_id)
    if record_id is not None:
        _record_id.set(record_id)


class LogContextFilter(logging.Filter):
    """Puts `user_id` and `record_id` on every record (from `extra`, else the context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "user_id", None) is None:
            record.user_id = _user_id.get()
        if getattr(record, "record_id", None) is None:
            record.record_id = _record_id.get()
        return True


@cache
def _configured_secrets() -> tuple[str, ...]:
    values = [settings.SECRET_KEY, settings.WECHAT_APP_SECRET, settings.LLM_API_KEY]
    models = settings.LLM_MODELS
    entries = models.values() if isinstance(models, dict) else models or []
    for entry in entries:
        if isinstance(entry, dict):
            values.append(str(entry.get("api_key") or ""))
            values.append(os.environ.get(str(entry.get("api_key_env") or ""), ""))
    values.append(str(settings.DATABASES["default"].get("PASSWORD") or ""))
    values.append(urlsplit(settings.REDIS_URL).password or "")
    found = {value for value in values if len(value) >= _SECRET_MIN_LENGTH}
    return tuple(sorted(found, key=len, reverse=True))


@receiver(setting_changed)
def _forget_secrets(*, setting: str, **kwargs: object) -> None:
    _configured_secrets.cache_clear()


def redact(text: str) -> str:
    """The text without tokens, secrets and the values of secret-sounding keys."""
    for secret in _configured_secrets():
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class PlainFormatter(logging.Formatter):
    """`time level logger message [user=… record=…]` for reading in a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name, value in (("user", getattr(record, "user_id", None)),
                                ("record", getattr(record, "record_id", None)))
            if value is not None
        ]  # fmt: skip
        if ids:
            first, newline, rest = line.partition("\n")
            line = f"{first} [{' '.join(ids)}]{newline}{rest}"
        return redact(line)


class JsonFormatter(OrjsonFormatter):
    """One JSON object a line: time, level, logger, message, the ids, any `extra` fields,
    and the traceback as one string. Redacted as a whole line, once (what is redacted
    contains no character that JSON escapes, and its replacement none either)."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def process_log_record(self, log_data: dict) -> dict:
        for name in ("user_id", "record_id"):
            if log_data.get(name) is None:
                log_data.pop(name, None)
        log_data.pop("color_message", None)  # uvicorn's copy of the message for terminals
        return log_data

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
