"""daphne on uvloop.

    python -m chatproject.serve_daphne -b 127.0.0.1 -p 8000 chatproject.asgi:application

Every option is daphne's own (this runs daphne's command line). daphne has no option for
its event loop: `daphne.server` makes one at import, from the event-loop policy then in
force, and runs Twisted's asyncio reactor on it. Installing uvloop's policy before that
import puts daphne, and with it every answer's upstream reads, timers and database
hand-offs, on uvloop: 11-15% less CPU per token at N=1 and N=100 than on asyncio's own loop
(bench/, `--compare`). `manage.py` does the same, so `runserver` runs on uvloop too.
"""

import asyncio
import sys

import uvloop


def use_uvloop() -> None:
    """Make the event loops created from now on uvloop's; before daphne.server is imported."""
    if "daphne.server" in sys.modules:
        # Too late: its loop exists, and a policy set now would give the project's other
        # loops a different kind than daphne's.
        raise RuntimeError("daphne.server was imported before uvloop's policy was installed")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    use_uvloop()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
