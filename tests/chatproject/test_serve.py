import asyncio
import email.utils
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import uvicorn

from chatproject.serve import QuietServer
from tests.support.live import ROOT, free_port, get_when_up


def _quiet_server_counting_ticks() -> tuple[QuietServer, list[int]]:
    server = QuietServer(uvicorn.Config(app=lambda scope, receive, send: None))
    ticks: list[int] = []

    async def on_tick(counter: int) -> bool:  # uvicorn's: refresh Date, then exit?
        ticks.append(counter)
        return server.should_exit

    server.on_tick = on_tick
    return server, ticks


async def test_the_main_loop_wakes_once_a_second_and_at_once_when_told_to_stop():
    server, ticks = _quiet_server_counting_ticks()
    loop_task = asyncio.create_task(server.main_loop())

    await asyncio.sleep(1.5)
    assert ticks == [0, 10]  # uvicorn's own loop: 15 ticks by now
    asked_at = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(loop_task, 1)

    assert time.monotonic() - asked_at < 0.2
    assert ticks[-1] % 10 == 0  # every tick does uvicorn's once-a-second work


def test_the_launcher_serves_with_uvicorns_options_wakes_rarely_and_stops_on_sigterm(
    tmp_path,
):
    port = free_port()
    app = "tests.chatproject.test_serve:hello_app"
    command = [sys.executable, "-m", "chatproject.serve", app, "--port", str(port),
               "--no-access-log", "--header", "x-served-by:chatproject.serve"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=(tmp_path / "serve.log").open("wb"))  # fmt: skip
    try:
        response = get_when_up(f"http://127.0.0.1:{port}/", process)
        switches_before = _sleeps_of_main_thread(process.pid)
        time.sleep(2.2)  # idle; the Date header is refreshed meanwhile
        idle_wakeups = _sleeps_of_main_thread(process.pid) - switches_before
        later = httpx.get(f"http://127.0.0.1:{port}/")
        process.send_signal(signal.SIGTERM)
        # Gracefully shut down, uvicorn re-raises the signal it caught (default action).
        assert process.wait(5) in (0, -signal.SIGTERM)
    finally:
        process.kill()
        process.wait()

    assert idle_wakeups <= 6  # uvicorn's own main loop: 22 or more (one per 0.1 s)
    assert response.text == "hello"
    assert response.headers["x-served-by"] == "chatproject.serve"
    first = email.utils.parsedate_to_datetime(response.headers["date"])
    second = email.utils.parsedate_to_datetime(later.headers["date"])
    assert (second - first).total_seconds() >= 1  # refreshed (to the second) while idle


def _sleeps_of_main_thread(pid: int) -> int:
    """How often the event-loop thread has gone to sleep (and so been woken) so far."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))


async def hello_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
