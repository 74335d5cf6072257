"""The production server: uvicorn, without its ten wake-ups a second.

    python -m chatproject.serve chatproject.asgi:application --host 127.0.0.1 --port 8001

Every option is uvicorn's own (this runs uvicorn's command line). The one difference:
uvicorn's main loop wakes every 0.1 s to look for a shutdown request, and every tenth
time refreshes its `Date` header. On this project's machines an idle process spends
~1.9 ms of CPU per second on those wake-ups (~0.3 ms with this loop; /proc schedstat over
60 s), and a process streaming one answer at a time ~9% more CPU per token than with this
loop (bench/, `--compare`). Here the loop wakes once a second for the `Date` header, and
at once when a signal asks it to stop.
"""

import asyncio
import contextlib
import importlib
import sys
from types import FrameType

import uvicorn.server

_DATE_REFRESH_SECONDS = 1.0


class QuietServer(uvicorn.server.Server):
    """uvicorn's Server with an event-driven main loop (same ticks' work, 1 per second)."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            # on_tick does its once-a-second work (Date header, notify callback) when the
            # counter is a multiple of 10: uvicorn counts tenths of a second.
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DATE_REFRESH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # Called from a signal handler or from the loop (chat.lifecycle's drain): either
        # way the loop's sleep ends now, not at the next refresh.
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                self._loop.call_soon_threadsafe(self._wake.set)


def main() -> None:
    # uvicorn's command line builds `Server(config=...)` from its module's globals (with
    # --workers and --reload too, in each worker process). The module, not `uvicorn.main`:
    # the package re-exports the command under that name.
    cli = importlib.import_module("uvicorn.main")
    cli.Server = QuietServer
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
