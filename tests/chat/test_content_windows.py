"""The content checkers and windows in this process, with no network: what is sent to a
checker, and what the keyword list finds."""

import asyncio

import pytest

from chat.content_check import gate
from chat.content_check.checkers import PASS, RISKY, Subject, Verdict, checker_configured
from chat.content_check.keywords import KeywordChecker, keywords_parse
from chat.streaming.upstream import ProviderError, UpstreamChunk

SUBJECT = Subject(record_id=1, openid="o_test")


class _Recording:
    """A checker that keeps every text it is given and finds `risky` in none but one."""

    def __init__(self, risky: str = "") -> None:
        self.texts: list[str] = []
        self.risky = risky

    async def check(self, text: str, *, side: str, subject: Subject) -> Verdict:
        self.texts.append(text)
        return Verdict(RISKY if self.risky and self.risky in text else PASS)


async def test_a_question_longer_than_a_window_is_checked_whole_in_overlapping_windows(settings):
    settings.CHAT_CONTENT_CHECK_MAX_CHARS = 300
    checker = _Recording()
    question = "".join(f"{n:04d}" for n in range(200))  # 800 characters

    await gate._Judge(checker, record_id=1).question(question)

    assert all(len(text) <= 300 for text in checker.texts)
    assert checker.texts[0] == question[:300]
    assert checker.texts[-1].endswith(question[-100:])
    covered = set()
    for text in checker.texts:
        start = question.index(text)
        covered.update(range(start, start + len(text)))
    assert covered == set(range(len(question)))


async def _batches(texts: list[str]):
    for text in texts:
        yield [UpstreamChunk(text=text)]
    yield [UpstreamChunk(finish_reason="stop")]


async def test_a_long_delta_is_split_into_windows_each_with_context(settings):
    settings.CHAT_CONTENT_CHECK_MAX_CHARS = 250
    checker = _Recording()
    answer = "".join(f"{n:03d}," for n in range(250))  # 1000 characters in one delta

    judge = gate._Judge(checker, record_id=1)
    upstream = gate._ReadAhead(_batches([answer]))
    batches = [batch async for batch in gate._answer_windows(upstream, judge)]

    texts = [chunk.text for batch in batches for chunk in batch if chunk.text]
    assert "".join(texts) == answer
    assert batches[-1][0].finish_reason == "stop"
    assert all(len(window) <= 250 for window in checker.texts)
    ends = [answer.index(window) + len(window) for window in checker.texts]
    assert ends[-1] == len(answer)
    for window, previous_end in zip(checker.texts[1:], ends, strict=False):
        # Each window reaches back at least 100 characters into text already checked.
        assert answer.index(window) <= previous_end - 100


async def test_a_blocked_window_passes_on_nothing_of_itself():
    checker = _Recording(risky="bad")
    judge = gate._Judge(checker, record_id=1)
    judge._verdict_kept = True  # no record to keep a verdict on here (a block still tries)
    upstream = gate._ReadAhead(_batches(["fine ", "b", "ad thing"]))
    passed: list[str] = []

    async def read() -> None:
        async for batch in gate._answer_windows(upstream, judge):
            passed.extend(chunk.text for chunk in batch)

    with pytest.raises(ProviderError, match="cannot be shown"):
        await read()
    assert "bad" not in "".join(passed)


def test_keywords_are_folded_and_split_on_commas_and_lines():
    assert keywords_parse(" Foo ,bar\nＢＡＺ\n\n,") == ["bar", "baz", "foo"]


async def test_the_keyword_checker_finds_a_word_anywhere_whatever_its_case(settings):
    settings.CHAT_CONTENT_CHECK_KEYWORDS = "暴力,Bad Word"
    checker = KeywordChecker()

    found = await checker.check("a BAD WORD here", side="answer", subject=SUBJECT)
    cjk = await checker.check("不要暴力", side="question", subject=SUBJECT)
    clean = await checker.check("bad, word", side="answer", subject=SUBJECT)

    assert (found.suggest, found.label, found.blocks) == ("risky", 21000, True)
    assert found.trace_id.startswith("keywords-")
    assert cjk.suggest == "risky"
    assert (clean.suggest, clean.blocks) == ("pass", False)


def test_content_checks_are_off_by_default(settings):
    assert checker_configured() is None
    settings.CHAT_CONTENT_CHECK = "keywords"
    settings.CHAT_CONTENT_CHECK_KEYWORDS = "x"
    assert isinstance(checker_configured(), KeywordChecker)


async def test_checks_every_so_often_make_fewer_longer_windows(settings):
    settings.CHAT_CONTENT_CHECK_EVERY_MS = 100

    async def slow_batches():
        for n in range(20):
            yield [UpstreamChunk(text=f"t{n} ")]
            await asyncio.sleep(0.01)
        yield [UpstreamChunk(finish_reason="stop")]

    checker = _Recording()
    judge = gate._Judge(checker, record_id=1)
    batches = [b async for b in gate._answer_windows(gate._ReadAhead(slow_batches()), judge)]

    assert "".join(c.text for b in batches for c in b) == "".join(f"t{n} " for n in range(20))
    assert 2 <= len(checker.texts) <= 4  # ~0.2 s of text, a check at most every 0.1 s
