"""The keyword-list checker: no network, for the embedded default and for a word list of
your own beside (or instead of) WeChat's.

Words come from CHAT_CONTENT_CHECK_KEYWORDS (comma- or newline-separated; the `_FILE` form
reads a file of them). Text and words are compared after Unicode NFKC folding and case
folding, so full-width letters and capitals do not slip through.
"""

import re
import secrets
import unicodedata

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat.content_check.checkers import PASS, RISKY, ContentChecker, Side, Subject, Verdict

LABEL_OTHER = 21000  # msgSecCheck's "other": a word list knows no category


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def keywords_parse(raw: str) -> list[str]:
    words = {_folded(word.strip()) for word in re.split(r"[,\n]", raw)}
    return sorted(word for word in words if word)


class KeywordChecker(ContentChecker):
    def __init__(self) -> None:
        words = keywords_parse(settings.CHAT_CONTENT_CHECK_KEYWORDS)
        if not words:
            raise ImproperlyConfigured(
                "CHAT_CONTENT_CHECK=keywords needs CHAT_CONTENT_CHECK_KEYWORDS (or its _FILE)"
            )
        # Longest first, so the longest of overlapping words is the one found.
        words.sort(key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, words)))

    async def check(self, text: str, *, side: Side, subject: Subject) -> Verdict:
        if self._pattern.search(_folded(text)) is None:
            return Verdict(PASS, 100)
        # A trace id of our own, so staff can tell checks apart in the log and the admin.
        return Verdict(RISKY, LABEL_OTHER, trace_id=f"keywords-{secrets.token_hex(6)}")
