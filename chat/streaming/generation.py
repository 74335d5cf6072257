"""Generation: one task per answer that reads the model and produces the event log.

Generation is kept apart from delivery (`chat/streaming/delivery.py`): the task below owns the
upstream call, the answer text and the single save at the end; responses only read its
event log. A client that hangs up detaches from the log but does not cancel the answer:
generation goes on, and a client may resume from any event id. Only when no client has
been attached for `CHAT_DETACH_GRACE_SECONDS` is the upstream call cancelled and the
partial answer saved as `interrupted`. A client that hangs up before reading anything,
even while its question is being saved, leaves such a detached answer too
(`generation_open`): once saved, a question is answered.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from django.conf import settings

from chat.answer_watch import answer_ended
from chat.content_check.gate import content_checked
from chat.models import ChatRecord
from chat.services import OpenedTurn, TurnOutcome, record_finish
from chat.streaming import eventbus, events
from chat.streaming.event_log import EventLog
from chat.streaming.providers import provider_stream
from chat.streaming.upstream import ModelSpec, ProviderError, Usage
from chatproject.db import run_db
from chatproject.logs import log_context

logger = logging.getLogger(__name__)

Status = ChatRecord.Status

# Live generations by record id, which also keeps their tasks referenced until they end.
_live: dict[int, "Generation"] = {}
# Finished ones, kept for resume until the replay TTL.
_recent: dict[int, "Generation"] = {}


class Generation:
    """The answer to one record, produced once, readable by any number of responses."""

    # One per open answer, for the answer's length: slots keep it small (bench/, memory).
    __slots__ = (
        "_coalesce_seconds", "_finish_reason", "_finished", "_first_token_ms", "_grace_timer",
        "_last_frame_at", "_mirroring", "_ping_seconds", "_ping_timer", "_started_at",
        "_stop_status", "_subscribers", "_unsent", "_upstream", "_usage", "_waiters", "log",
        "messages", "record_id", "session_id", "spec", "status",
    )  # fmt: skip

    def __init__(self, *, turn: OpenedTurn, spec: ModelSpec, started_at: float) -> None:
        self.record_id = turn.record_id
        self.session_id = turn.session_id
        self.spec = spec
        self.messages = turn.messages
        self.log = EventLog()  # the events, and the published text
        self.status: str | None = None  # the saved status, once finished
        # Set once saved; futures, not an asyncio.Event (its deque costs ~0.8 KB per answer).
        self._finished: asyncio.Future = asyncio.get_running_loop().create_future()
        self._grace_timer: asyncio.TimerHandle | None = None
        self._mirroring = False
        # Deltas that arrive within CHAT_COALESCE_MS of the last one published travel in
        # one event (see `_relay`).
        self._coalesce_seconds = settings.CHAT_COALESCE_MS / 1000
        self._unsent: list[str] = []
        self._started_at = started_at  # monotonic time the request arrived
        # Readers waiting for the next frame; woken by each frame, and by the ping tick
        # when the log has been quiet for CHAT_PING_SECONDS (one timer per answer, not
        # one per wait).
        self._waiters: list[asyncio.Future] = []
        self._last_frame_at = time.monotonic()
        self._ping_seconds = settings.CHAT_PING_SECONDS
        self._ping_timer: asyncio.TimerHandle | None = None
        self._subscribers = 0
        self._stop_status: str | None = None
        self._upstream: asyncio.Task | None = None
        self._first_token_ms: int | None = None
        self._finish_reason: str | None = None
        self._usage: Usage | None = None

    # --- Reading the log (delivery) ---------------------------------------------------

    @property
    def finished(self) -> bool:
        """The answer is saved and the log is complete, `[DONE]` included."""
        return self._finished.done()

    @property
    def answer_so_far(self) -> str:
        return self.log.text + "".join(self._unsent)

    def attach(self) -> None:
        self._subscribers += 1
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def detach(self) -> None:
        self._subscribers -= 1
        if self._subscribers <= 0 and not self.finished:
            self._start_grace()
            self.mirror()  # the client may come back through another process

    def mirror(self) -> None:
        """Copy this answer's log to Redis (once), so any process can serve a resume."""
        if eventbus.enabled() and not self._mirroring:
            self._mirroring = True
            _spawn(_mirror(self))

    def _start_grace(self) -> None:
        grace = settings.CHAT_DETACH_GRACE_SECONDS
        if grace <= 0:
            self.stop(Status.INTERRUPTED)
            return
        loop = asyncio.get_running_loop()
        self._grace_timer = loop.call_later(grace, self._grace_over)

    def _grace_over(self) -> None:
        self._grace_timer = None
        if self._subscribers > 0 or self.finished:
            return
        if eventbus.enabled():
            # A client may be reading this answer through another process.
            _spawn(self._stop_unless_read_elsewhere())
        else:
            self.stop(Status.INTERRUPTED)

    async def _stop_unless_read_elsewhere(self) -> None:
        try:
            read_elsewhere = await eventbus.has_remote_reader(self.record_id)
        except Exception:
            logger.exception("could not ask Redis about readers of %s", self.record_id)
            read_elsewhere = False
        if self._subscribers > 0 or self.finished:
            return
        if read_elsewhere:
            self._start_grace()
        else:
            self.stop(Status.INTERRUPTED)

    async def wait_finished(self, wait_seconds: float) -> bool:
        try:
            async with asyncio.timeout(wait_seconds):
                await asyncio.shield(self._finished)
        except TimeoutError:
            return False
        return True

    async def wait_for_frames(self, *, after: int) -> bool:
        """Wait until the log grows past `after` or ends (True), or until it has been
        quiet for the ping interval (False: time for a keep-alive)."""
        if len(self.log) > after or self.finished:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter
        return len(self.log) > after or self.finished

    # --- Control ------------------------------------------------------------------------

    def stop(self, status: str) -> None:
        """Cancel the upstream call; the answer so far is saved with `status` (first wins)."""
        if self.finished or self._stop_status is not None:
            return
        self._stop_status = status
        if self._upstream is not None and not self._upstream.done():
            self._upstream.cancel()

    # --- Producing the log --------------------------------------------------------------

    def _publish(self, event_type: str, payload: dict) -> None:
        self.log.add(event_type, payload)
        self._published()

    def _publish_delta(self, text: str) -> None:
        self.log.add_delta(text)
        self._published()

    def _published(self) -> None:
        self._last_frame_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a reader that left was cancelled
                waiter.set_result(None)

    def _ping_tick(self) -> None:
        quiet_for = time.monotonic() - self._last_frame_at
        if quiet_for >= self._ping_seconds:
            self._wake()  # nothing new: each reader sends a ping
            quiet_for = 0.0
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self._ping_seconds - quiet_for, self._ping_tick)

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started_at) * 1000)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self._ping_seconds, self._ping_tick)
        self._publish(
            events.START,
            {"record_id": self.record_id, "session_id": self.session_id, "model": self.spec.name},
        )
        error: ProviderError | None = None
        cancelled_from_outside = False
        if self._stop_status is None:
            self._upstream = asyncio.create_task(self._relay())
        try:
            if self._upstream is not None:
                await self._upstream
            status = self._stop_status or Status.DONE
        except asyncio.CancelledError:
            # Either stop() cancelled the upstream task, or the server is shutting down
            # and cancelled this task: both save what was generated so far.
            cancelled_from_outside = self._stop_status is None
            status = self._stop_status or Status.INTERRUPTED
        except ProviderError as exc:
            status, error = Status.ERROR, exc
        except Exception:
            logger.exception("generation of record %s failed", self.record_id)
            status = Status.ERROR
            error = ProviderError("internal_error", "The answer failed on our side.")
        await self._finish(status, error)
        if cancelled_from_outside:
            raise asyncio.CancelledError

    async def _relay(self) -> None:
        # Coalescing is paced reading: the upstream is read at most once per window, and
        # each read (every delta it brought) becomes one event. Fewer reads, frames,
        # writes and mini-program setData calls; the same text.
        window = self._coalesce_seconds
        stream = provider_stream(self.spec, self.messages, read_every=window)
        stream = content_checked(stream, record_id=self.record_id)  # when configured
        self.messages = []  # the provider sends them, then drops them too
        async for batch in stream:
            for chunk in batch:
                if chunk.text:
                    self._unsent.append(chunk.text)
                    if not window:  # coalescing off: one event per delta
                        self._flush_text()
                if chunk.finish_reason:
                    self._finish_reason = chunk.finish_reason
                if chunk.usage:
                    self._usage = chunk.usage
            if self._first_token_ms is None and (self.log.has_text or self._unsent):
                self._first_token_ms = self._elapsed_ms()
            self._flush_text()
        if self._finish_reason is None:
            raise ProviderError("upstream_incomplete", "The model's answer ended early.")
        if self._finish_reason == "content_filter":
            raise ProviderError("content_blocked", "The model stopped: content was filtered.")

    def _flush_text(self) -> None:
        if self._unsent:
            text = "".join(self._unsent)
            self._unsent.clear()
            self._publish_delta(text)

    async def _finish(self, status: str, error: ProviderError | None) -> None:
        self._flush_text()  # every generated character is delivered before the end
        if error is not None:
            self._publish(events.ERROR, {"code": error.code, "message": error.message})
        outcome = self._outcome(status, error)
        saved = True
        try:
            await run_db(record_finish, record_id=self.record_id, outcome=outcome)
        except Exception:
            saved = False
            logger.exception("could not save record %s", self.record_id)
            message = "The answer could not be saved."
            self._publish(events.ERROR, {"code": "storage_error", "message": message})
        done = self._done_payload(outcome)
        total_ms = done["timings"]["total_ms"]
        await answer_ended(
            record_id=self.record_id, outcome=outcome, total_ms=total_ms, saved=saved
        )
        self._publish(events.DONE, done)
        self.log.end()
        self.status = status
        self._finished.set_result(None)
        self._wake()
        if self._ping_timer is not None:
            self._ping_timer.cancel()

    def _outcome(self, status: str, error: ProviderError | None) -> TurnOutcome:
        usage = self._usage or Usage()
        return TurnOutcome(
            status=status,
            answer=self.answer_so_far,
            error_code=error.code if error else "",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            first_token_ms=self._first_token_ms,
        )

    def _done_payload(self, outcome: TurnOutcome) -> dict:
        return events.done_payload(
            record_id=self.record_id,
            session_id=self.session_id,
            status=outcome.status,
            finish_reason=self._finish_reason,
            error_code=outcome.error_code,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            first_token_ms=outcome.first_token_ms,
            total_ms=self._elapsed_ms(),
        )


def _spawn(coroutine) -> asyncio.Task:
    task = asyncio.create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


_background: set[asyncio.Task] = set()


async def generation_open(
    turn_saving: Coroutine[Any, Any, OpenedTurn], *, spec: ModelSpec, started_at: float
) -> Generation:
    """Save the question (`turn_saving`) and start its answer: once saved, it is answered.

    A client may hang up at any moment, and Django then cancels the view. Cancelled while
    the question was being saved (a database thread finishes its INSERT regardless), the
    view would leave a `pending` record that nothing answers. So saving and starting run
    as one task the view's cancellation does not reach; if the view is gone by the time the
    answer starts, the answer is detached at once, as for a client that dropped: the grace
    period runs, and the owner may resume it or find it in the history.
    """

    async def save_then_start() -> Generation:
        turn = await turn_saving
        return generation_start(turn=turn, spec=spec, started_at=started_at)

    opening = _spawn(save_then_start())
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_detach_unclaimed)
        raise


def _detach_unclaimed(opening: asyncio.Task) -> None:
    # The question was refused (its error had no one to go to) or never saved: nothing to do.
    if not opening.cancelled() and opening.exception() is None:
        opening.result().detach()


def generation_start(*, turn: OpenedTurn, spec: ModelSpec, started_at: float) -> Generation:
    """Start answering; the answer is attached to its asker until the asker's response
    (`delivery.answer_response`) lets go of it. The process-wide loops around the answers
    (`lifecycle.ensure_running`) are started by the caller: they depend on this module."""
    # The answer's log lines name it and its owner.
    log_context(record_id=turn.record_id, user_id=turn.owner_id)
    generation = Generation(turn=turn, spec=spec, started_at=started_at)
    generation.attach()
    _live[generation.record_id] = generation
    task = asyncio.create_task(generation.run(), name=f"generation-{generation.record_id}")
    task.add_done_callback(lambda _: _generation_ended(generation))
    return generation


async def _mirror(generation: Generation) -> None:
    async def wait(*, after: int) -> None:
        await generation.wait_for_frames(after=after)

    try:
        await eventbus.mirror_log(generation.record_id, generation.log, wait)
    except Exception:
        logger.exception("could not mirror record %s to Redis", generation.record_id)


def _generation_ended(generation: Generation) -> None:
    _live.pop(generation.record_id, None)
    _recent[generation.record_id] = generation
    loop = asyncio.get_running_loop()
    loop.call_later(settings.CHAT_REPLAY_TTL_SECONDS, _recent.pop, generation.record_id, None)


def generation_live(record_id: int) -> Generation | None:
    return _live.get(record_id)


def generation_find(record_id: int) -> Generation | None:
    """The generation of a record in this process, live or recently finished."""
    return _live.get(record_id) or _recent.get(record_id)


def generations_live() -> list[Generation]:
    return list(_live.values())
