"""`runserver` (daphne's) that ends when its port is taken, instead of running on deaf.

daphne logs "Listen failure" from a thread under the autoreloader and the process goes on
without a socket; a developer then talks to whatever else holds the port.
"""

import errno
import os
import socket

from daphne.management.commands.runserver import Command as DaphneRunserver
from django.core.management import CommandError


def port_taken(addr: str, port: int, *, ipv6: bool) -> bool:
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As a listening server binds it: a port in TIME_WAIT is free to reuse.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((addr or ("::" if ipv6 else "0.0.0.0"), port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


class Command(DaphneRunserver):
    def run(self, **options: object) -> None:
        # The autoreloader's child (RUN_MAIN) is started by a parent that already checked.
        if not os.environ.get("RUN_MAIN") and port_taken(
            self.addr, int(self.port), ipv6=self.use_ipv6
        ):
            raise CommandError(
                f"Port {self.port} on {self.addr or 'all interfaces'} is already in use. "
                f"Stop the other server, or pick another port: make run PORT={int(self.port) + 1}"
            )
        super().run(**options)
