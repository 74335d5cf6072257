"""Which language a page speaks: the words a person sees on it, and those of them that are
in another language than the page should be."""

import re
from html.parser import HTMLParser

# Attributes a browser shows: tooltips, button captions, placeholders, screen-reader labels.
_SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
_BUTTON_TYPES = ("submit", "button", "reset")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")
# Setting names (CHAT_LIMIT_QUESTIONS_PER_DAY) are names in every language.
_SETTING_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


class _ShownText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._unseen = 0  # depth inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._unseen += 1
        values = dict(attrs)
        self.pieces += [values[name] or "" for name in _SHOWN_ATTRIBUTES if name in values]
        if tag == "input" and values.get("type") in _BUTTON_TYPES:
            self.pieces.append(values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._unseen:
            self._unseen -= 1

    def handle_data(self, data: str) -> None:
        if not self._unseen:
            self.pieces.append(data)


def shown_text(html: str, *, leaving_out: tuple[str, ...] = ()) -> str:
    """The page's visible text and shown attributes, one piece a line, without the
    `leaving_out` strings (what the data put there: names, questions, codes)."""
    parser = _ShownText()
    parser.feed(html)
    text = "\n".join(" ".join(piece.split()) for piece in parser.pieces if piece.strip())
    for data in sorted(leaving_out, key=len, reverse=True):  # longest first: "ab" before "a"
        text = text.replace(data, " ")
    return text


def english_words(text: str, *, allowed: set[str]) -> set[str]:
    """Latin words of two letters or more that are not `allowed` (names, units, acronyms)
    nor part of a setting's name."""
    words = {word for word in _LATIN_WORD.findall(_SETTING_NAME.sub(" ", text)) if len(word) > 1}
    return {word for word in words if word not in allowed and word.lower() not in allowed}


def chinese_runs(text: str) -> set[str]:
    return set(_HAN.findall(text))
