"""The server process around the answers: heartbeats, the reaper, stops, and draining.

- Every `CHAT_CHECKPOINT_SECONDS` the process saves each live answer so far and refreshes
  its heartbeat (one short transaction for all of them). If the process dies, that
  checkpoint is what the reaper keeps.
- The reaper closes records whose heartbeat went stale: at start-up (`manage.py
  reap_streams`, and chatproject/asgi.py), and every minute from every live process.
- With Redis, stops published by any process reach the one generating, and a reader on
  another process whose answer's process died ends it for every reader, as soon as the
  answer's heartbeat is as stale as the reaper's (`answer_end_if_lost`).
- SIGTERM drains: new streams are refused (503 `server_draining`), running answers get
  `CHAT_DRAIN_SECONDS` to finish, the rest are saved `interrupted`, then the server stops.
"""

import asyncio
import contextvars
import logging
import signal
import sys

from django.conf import settings

from chat.content_check.wechat_token import wechat_http_close
from chat.models import ChatRecord
from chat.selectors import record_heartbeat_stale, record_status
from chat.services import SERVER_LOST, record_lost_close, records_checkpoint, records_reap
from chat.streaming import eventbus, events
from chat.streaming.generation import Status, generation_find, generation_live, generations_live
from chat.streaming.providers import clients_close
from chatproject.db import run_db

logger = logging.getLogger(__name__)

_REAP_EVERY_SECONDS = 60.0

_running: dict[asyncio.AbstractEventLoop, list[asyncio.Task]] = {}
_draining = False


def ensure_running() -> None:
    """Start this process's background loops once (on the first answer it generates)."""
    loop = asyncio.get_running_loop()
    if loop in _running:
        return
    _drain_on_sigterm_under_uvicorn(loop)
    # Started from the first request's view: in a context of their own, so their log
    # lines do not carry that request's user and record.
    own = contextvars.Context()
    tasks = [loop.create_task(_checkpoint_loop(), name="chat-checkpoints", context=own)]
    if eventbus.enabled():
        listener = eventbus.listen_for_control(on_stop=_stop_local, on_mirror=_mirror_local)
        tasks.append(loop.create_task(listener, name="chat-control", context=own))
    _running[loop] = tasks


def _stop_local(record_id: int) -> None:
    generation = generation_live(record_id)
    if generation is not None:
        generation.stop(Status.STOPPED)


def _mirror_local(record_id: int) -> None:
    generation = generation_find(record_id)
    if generation is not None:
        generation.mirror()


async def _checkpoint_loop() -> None:
    since_reap = 0.0
    while True:
        await asyncio.sleep(settings.CHAT_CHECKPOINT_SECONDS)
        since_reap += settings.CHAT_CHECKPOINT_SECONDS
        try:
            await checkpoint_live_answers()
            if since_reap >= _REAP_EVERY_SECONDS:
                since_reap = 0.0
                await reap_dead_answers()
        except Exception:
            logger.exception("checkpoint failed; will retry")


async def checkpoint_live_answers() -> None:
    partial = {g.record_id: g.answer_so_far for g in generations_live() if not g.finished}
    if partial:
        await run_db(records_checkpoint, partial_answers=partial)


# --- An answer read on another process than its own -------------------------------------

_LOST_MESSAGE = "The server generating this answer stopped; the answer up to here is saved."


async def answer_end_if_lost(record_id: int) -> None:
    """Called while a reader on this process finds the answer's log in Redis quiet: if the
    process generating it is gone (its heartbeat is older than CHAT_REAP_AFTER_SECONDS,
    the reaper's test), close the record as the reaper does but with all the text its log
    holds, and end the log with the record's outcome, so that every reader of it, here or
    on any process, ends with `error` / `done` and `[DONE]`."""
    try:
        stale = await run_db(
            record_heartbeat_stale,
            record_id=record_id,
            stale_after_seconds=settings.CHAT_REAP_AFTER_SECONDS,
        )
        if not stale:
            return
        text = await eventbus.log_text(record_id)
        record = await run_db(record_lost_close, record_id=record_id, generated_text=text)
        ended = await eventbus.log_end(record_id, _ending_events(record))
    except Exception:  # the database or Redis is out of reach: the reader pings on
        logger.exception("could not tell whether record %s lost its process", record_id)
        return
    if ended:
        logger.warning("record %s lost its process; ended its log for its readers", record_id)


def _ending_events(record: ChatRecord) -> list[tuple[str, dict]]:
    """The events that end a record's log, from the record as saved."""
    endings = []
    if record.error_code:
        message = _LOST_MESSAGE if record.error_code == SERVER_LOST else "The answer failed."
        endings.append((events.ERROR, {"code": record.error_code, "message": message}))
    lasted = record.finished_at - record.created_at if record.finished_at else None
    payload = events.done_payload(
        record_id=record.pk,
        session_id=record.session_id,
        status=record.status,
        finish_reason=None,
        error_code=record.error_code,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        first_token_ms=record.first_token_ms,
        total_ms=int(lasted.total_seconds() * 1000) if lasted else None,
    )
    endings.append((events.DONE, payload))
    return endings


async def reap_dead_answers() -> list[int]:
    live_ids = [g.record_id for g in generations_live()]
    reaped = await run_db(
        records_reap, stale_after_seconds=settings.CHAT_REAP_AFTER_SECONDS, exclude_ids=live_ids
    )
    if reaped:
        logger.warning("reaped %d records left open by a dead process: %s", len(reaped), reaped)
    return reaped


# --- Draining on SIGTERM ------------------------------------------------------------------


def is_draining() -> bool:
    return _draining


async def drain() -> None:
    """Refuse new streams, let running answers finish for a while, save the rest."""
    global _draining
    _draining = True
    running = generations_live()  # no new ones start from now on
    logger.info("draining: %d answers running", len(running))
    await asyncio.gather(*(g.wait_finished(settings.CHAT_DRAIN_SECONDS) for g in running))
    leftovers = [g for g in running if not g.finished]
    for generation in leftovers:
        generation.stop(Status.INTERRUPTED)
    await asyncio.gather(*(g.wait_finished(10) for g in leftovers))
    await asyncio.sleep(0.2)  # let responses write their final frames
    logger.info("drained; %d answers saved as interrupted", len(leftovers))


def _drain_on_sigterm_under_uvicorn(loop: asyncio.AbstractEventLoop) -> None:
    """Under uvicorn, drain first and then hand SIGTERM to uvicorn's own handler.

    uvicorn installs its handlers when it starts serving, so this runs later: with the
    first answer this process generates (a process with no answers has nothing to drain).
    """
    if "uvicorn" not in sys.modules:
        return
    uvicorn_handler = signal.getsignal(signal.SIGTERM)
    if not callable(uvicorn_handler):
        return

    def on_sigterm(signum, frame) -> None:
        if _draining:
            uvicorn_handler(signum, frame)
            return
        loop.call_soon_threadsafe(_start_drain, lambda: uvicorn_handler(signum, None))

    def _start_drain(then) -> None:
        task = loop.create_task(drain())
        task.add_done_callback(lambda _: then())
        _running[loop].append(task)

    signal.signal(signal.SIGTERM, on_sigterm)


def install_sigterm_drain() -> None:
    """Under daphne (Twisted), replace the reactor's SIGTERM handler with a drain, and
    close the model clients when the reactor stops (uvicorn: `lifespan`)."""
    # The daphne app in INSTALLED_APPS imports daphne.server in every process: it is
    # daphne serving only if uvicorn is not.
    if "daphne.server" not in sys.modules or "uvicorn" in sys.modules:
        return
    from twisted.internet import reactor

    def on_sigterm(signum, frame) -> None:
        if _draining:  # a second SIGTERM: stop now
            reactor.callFromThread(reactor.stop)
            return
        reactor.callFromThread(_drain_then_stop)

    def _drain_then_stop() -> None:
        task = asyncio.get_event_loop().create_task(drain())
        task.add_done_callback(lambda _: reactor.stop())
        _running.setdefault(asyncio.get_event_loop(), []).append(task)

    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)
    reactor.addSystemEventTrigger("before", "shutdown", _close_clients_under_twisted)


def _close_clients_under_twisted():
    # Any stop (Ctrl-C too) closes the model clients; the reactor waits for the Deferred.
    from twisted.internet.defer import Deferred

    return Deferred.fromFuture(asyncio.ensure_future(_clients_close()))


async def _clients_close() -> None:
    await clients_close()  # the models'
    await wechat_http_close()  # content checks'


async def lifespan(scope, receive, send) -> None:
    """The ASGI lifespan protocol (uvicorn): at shutdown, however it was asked for, the
    model clients and their connections are closed."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _clients_close()
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- Stop from anywhere -------------------------------------------------------------------

_STOP_WAIT_SECONDS = 3.0


async def answer_stop(*, record_id: int) -> str | None:
    """Stop an answer wherever it is generated; its final status, or None if still open.

    Idempotent: stopping a finished answer changes nothing and reports its status.
    """
    generation = generation_live(record_id)
    if generation is not None:
        generation.stop(Status.STOPPED)
        await generation.wait_finished(_STOP_WAIT_SECONDS)
        return generation.status
    if eventbus.enabled():
        await eventbus.publish_stop(record_id)
    return await _status_once_closed(record_id)


async def _status_once_closed(record_id: int) -> str | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STOP_WAIT_SECONDS
    while True:
        status = await run_db(record_status, record_id=record_id)
        if status in ChatRecord.FINISHED_STATUSES:
            return status
        if loop.time() > deadline:
            return None
        await asyncio.sleep(0.05)
