"""The content check around a model's stream: the question before the model is asked, the
answer while it streams, and nothing unchecked ever passed on.

`content_checked` wraps the stream the generation reads (chat/streaming/generation.py `_relay`), so
pacing, coalescing, saving and delivery stay as they are: they only see text later.

- The question is checked first; the model's stream is not even opened until it passes.
- The model is read ahead in a task of its own while the answer's newest text is checked.
  Each check covers a window of at most CHAT_CONTENT_CHECK_MAX_CHARS characters ending at
  the newest text, filled with the text before it (at least `_MIN_CONTEXT` characters
  when there is that much), so a phrase cut in two by the stream's pieces is still seen
  whole. One check at a time per answer: what arrives meanwhile goes into the next one
  (which starts at least CHAT_CONTENT_CHECK_EVERY_MS after the one before, if set).
  Only the text not yet checked is held back: a delta reaches the client a check's round
  trip after the model produced it (bench/README.md measures it).
- A block raises ProviderError `content_blocked` after its verdict is stored and the
  record hidden; the text held back is dropped, never delivered, never saved.
- A checker that cannot judge follows CHAT_CONTENT_CHECK_ON_ERROR: `open` passes the
  text on unchecked (logged, counted), and the rest of the answer too, without waiting
  for more failures; `closed` ends with `content_check_unavailable`.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from django.conf import settings

from chat.content_check.checkers import (
    PASS,
    CheckUnavailable,
    ContentChecker,
    Side,
    Subject,
    checker_configured,
)
from chat.content_check.verdicts import subject_load, verdict_store
from chat.streaming.upstream import ProviderError, UpstreamChunk
from chatproject import metrics
from chatproject.db import run_db

logger = logging.getLogger(__name__)

BLOCKED = "content_blocked"
BLOCKED_MESSAGE = "This content cannot be shown."
UNAVAILABLE = "content_check_unavailable"
UNAVAILABLE_MESSAGE = "The content could not be checked; try again in a moment."
_MIN_CONTEXT = 100  # characters of already checked text in each answer window, when there

Batches = AsyncIterator[list[UpstreamChunk]]


def content_checked(stream: Batches, *, record_id: int) -> Batches:
    """`stream` as it is when content checks are off; else the same batches, checked."""
    checker = checker_configured()
    if checker is None:
        return stream
    return _checked(stream, _Judge(checker, record_id))


async def _checked(stream: Batches, judge: "_Judge") -> Batches:
    try:
        question, openid = await run_db(subject_load, record_id=judge.record_id)
        judge.subject = Subject(record_id=judge.record_id, openid=openid)
        await judge.question(question)
    except BaseException:
        await stream.aclose()  # never started: the model was not asked
        raise
    upstream = _ReadAhead(stream)
    try:
        async for batch in _answer_windows(upstream, judge):
            yield batch
    finally:
        upstream.close()


class _Judge:
    """One record's checks: the verdicts, the policy on failures, the metrics."""

    def __init__(self, checker: ContentChecker, record_id: int) -> None:
        self.checker = checker
        self.record_id = record_id
        self.subject = Subject(record_id=record_id, openid="")
        self._verdict_kept = False
        # Sides whose check failed under `open`: a checker that times out would otherwise
        # hold each later window of the answer for the whole timeout.
        self._failed_open: set[str] = set()

    async def question(self, question: str) -> None:
        # A question longer than a window (CHAT_QUESTION_MAX_CHARS may allow it) is checked
        # in overlapping windows, all at once.
        size = settings.CHAT_CONTENT_CHECK_MAX_CHARS
        step = size - _MIN_CONTEXT
        starts = range(0, max(1, len(question) - _MIN_CONTEXT), step)
        await asyncio.gather(*(self.judge(question[at : at + size], "question") for at in starts))

    async def judge(self, text: str, side: Side) -> None:
        """Return if `text` may be shown; raise ProviderError if not."""
        if side in self._failed_open:
            return  # failing open: the rest of this side goes unchecked, not late
        started = time.monotonic()
        try:
            verdict = await self.checker.check(text, side=side, subject=self.subject)
        except Exception as exc:
            self._failed(exc, side)
            return
        finally:
            metrics.CONTENT_CHECK_SECONDS.observe(time.monotonic() - started)
        if verdict.suggest == PASS:
            return
        blocked = verdict.blocks
        if blocked or not self._verdict_kept:
            self._verdict_kept = True
            try:
                await run_db(verdict_store, record_id=self.record_id, side=side,
                             verdict=verdict, blocked=blocked)  # fmt: skip
            except Exception:
                logger.exception("could not store the content verdict of %s", self.record_id)
        if blocked:
            metrics.CONTENT_BLOCKS.labels(side=side).inc()
            logger.info(
                "content blocked (%s): suggest=%s label=%s trace_id=%s",
                side, verdict.suggest, verdict.label, verdict.trace_id,
            )  # fmt: skip
            raise ProviderError(BLOCKED, BLOCKED_MESSAGE)

    def _failed(self, exc: Exception, side: Side) -> None:
        policy = settings.CHAT_CONTENT_CHECK_ON_ERROR
        metrics.CONTENT_CHECK_FAILURES.labels(side=side, policy=policy).inc()
        if isinstance(exc, CheckUnavailable):
            logger.warning("content check of the %s failed (fail %s): %s", side, policy, exc)
        else:  # a checker's bug: the same policy, with its traceback
            logger.exception("content check of the %s failed (fail %s)", side, policy)
        if policy == "closed":
            raise ProviderError(UNAVAILABLE, UNAVAILABLE_MESSAGE) from None
        self._failed_open.add(side)


class _ReadAhead:
    """The model's stream, read in a task of its own while checks run."""

    def __init__(self, stream: Batches) -> None:
        self._text: list[str] = []
        self.endings: list[UpstreamChunk] = []  # finish reason and usage, passed on last
        self.error: BaseException | None = None
        self.ended = False
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: Batches) -> None:
        try:
            async for batch in stream:
                for chunk in batch:
                    if chunk.text:
                        self._text.append(chunk.text)
                    if chunk.finish_reason or chunk.usage:
                        self.endings.append(
                            UpstreamChunk(finish_reason=chunk.finish_reason, usage=chunk.usage)
                        )
                self._arrived.set()
        except Exception as exc:  # passed on once the text before it is checked
            self.error = exc
        finally:
            self.ended = True
            self._arrived.set()
            with contextlib.suppress(Exception):
                await stream.aclose()

    def take(self) -> str:
        text = "".join(self._text)
        self._text.clear()
        return text

    async def wait(self) -> None:
        await self._arrived.wait()
        self._arrived.clear()

    def close(self) -> None:
        self._task.cancel()  # the model's stream closes with it: a block stops the tokens


async def _answer_windows(upstream: _ReadAhead, judge: _Judge) -> Batches:
    size = settings.CHAT_CONTENT_CHECK_MAX_CHARS
    every, loop = settings.CHAT_CONTENT_CHECK_EVERY_MS / 1000, asyncio.get_running_loop()
    checked = ""  # the end of the text passed on: the context of the next window
    pending = ""
    while True:
        pending += upstream.take()
        if not pending:
            if upstream.ended:
                break
            await upstream.wait()
            continue
        room = size - min(len(checked), _MIN_CONTEXT)
        new, pending = pending[:room], pending[room:]
        window = (checked + new)[-size:]
        started = loop.time()
        await judge.judge(window, "answer")
        yield [UpstreamChunk(text=new)]
        checked = window
        # CHAT_CONTENT_CHECK_EVERY_MS: fewer, longer windows (WeChat's quota) for later text.
        await asyncio.sleep(max(0.0, started + every - loop.time()))
    if upstream.error is not None:
        raise upstream.error
    if upstream.endings:
        yield upstream.endings
