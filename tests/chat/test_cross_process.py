"""Two real server processes on one database and one Redis, as an operator runs them: a
client that hangs up while its question is saved, a reader through the other process while
the model is silent, and a generating process that is SIGKILLed under its readers.

On the embedded default (one process, memory only) the pair is one process, and the tests
that need a second process sharing Redis are skipped."""

import asyncio
import json
import os
import random

import pytest

from chat.models import ChatRecord
from tests.conftest import live_models
from tests.support.live import hang_up_after_sending

pytestmark = pytest.mark.django_db(transaction=True)

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="two processes share answers through Redis"
)

# The operator set-up, scaled down: a ping interval longer than the Redis client's
# 5 s socket timeout (the default is 15 s), a short grace period and quick reaping.
PING_SECONDS = 6.0
GRACE_SECONDS = 2.0
CHECKPOINT_SECONDS = 0.5
REAP_AFTER_SECONDS = 3.0


def pair_env(upstream) -> dict[str, str]:
    base = {"base_url": upstream.base_url, "api_key": "test-key", "max_retries": 0}
    patient = [
        {**base, "name": "test-patient", "model": "upstream-patient", "timeout": 10},
        {**base, "name": "test-seven", "model": "upstream-seven", "timeout": 7},
    ]
    return {
        "LLM_MODELS": json.dumps(live_models(upstream) + patient),
        "CHAT_PING_SECONDS": str(PING_SECONDS),
        "CHAT_DETACH_GRACE_SECONDS": str(GRACE_SECONDS),
        "CHAT_CHECKPOINT_SECONDS": str(CHECKPOINT_SECONDS),
        "CHAT_REAP_AFTER_SECONDS": str(REAP_AFTER_SECONDS),
    }


@pytest.fixture(scope="module")
def pair(start_server, upstream):
    """Process A (uvicorn, the production launcher) and process B (daphne)."""
    env = pair_env(upstream)
    first = start_server(software="uvicorn", **env)
    second = start_server(**env) if os.environ.get("REDIS_URL") else first
    return first, second


class LogWatch:
    """What the servers logged since the test began: never a traceback."""

    def __init__(self, *servers) -> None:
        self._servers = {server: len(server.log_text()) for server in set(servers)}

    def assert_clean(self) -> None:
        for server, start in self._servers.items():
            new = server.log_text()[start:]
            assert "Traceback" not in new, new


@pytest.fixture
def clean_logs(pair):
    watch = LogWatch(*pair)
    yield watch
    watch.assert_clean()


def _hang_up_after(deltas: int):
    def on_event(event, transcript):
        return event.event == "delta" and len(transcript.of_type("delta")) == deltas

    return on_event


async def test_a_client_hanging_up_while_its_question_is_saved_leaves_no_open_record(
    pair, owner_token, upstream, clean_logs
):
    rng = random.Random(23)
    short = [upstream.script(tokens=["短", "答"], pace=0.02) for _ in range(25)]
    long = [upstream.script(tokens=[f"L{i} " for i in range(300)], pace=0.03) for _ in range(25)]
    scenarios = short + long
    delays = [rng.uniform(0, 0.02) for _ in scenarios]
    prefix = f"leave-{rng.getrandbits(32):08x}"

    async def ask_and_leave(index: int) -> None:
        server = pair[index % 2]
        body = {"question": f"{prefix} {index} {scenarios[index].tag}"}
        await hang_up_after_sending(server.url, owner_token, body, delay=delays[index])

    await asyncio.gather(*(ask_and_leave(i) for i in range(len(scenarios))))
    await asyncio.sleep(GRACE_SECONDS + 3)

    saved = {r.question.split()[1]: r async for r in ChatRecord.objects.filter(
        question__startswith=prefix)}  # fmt: skip
    still_open = [r.status for r in saved.values() if not r.is_finished]
    assert still_open == [], f"{len(still_open)} of {len(saved)} saved questions left open"
    for index, scenario in enumerate(scenarios):
        record = saved.get(str(index))
        if record is None:
            continue  # not saved at all: the hang-up came before the question was read
        # Once saved, it is answered as a detached answer: done if the model finished
        # within the grace period, else interrupted with what it had said.
        assert record.error_code == "", (index, record.status, record.error_code)
        if scenario in short:
            assert (record.status, record.answer) == ("done", "短答")
        else:
            assert record.status == "interrupted"
            assert scenario.text.startswith(record.answer)
            assert scenario.aborted.is_set()
    assert len(saved) >= len(scenarios) // 2  # most hang-ups land after the question is read
