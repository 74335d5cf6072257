from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chat.services import records_reap


class Command(BaseCommand):
    help = (
        "Mark answers left pending/streaming by a dead server process as interrupted, "
        "keeping the text of their last checkpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after",
            type=float,
            default=settings.CHAT_REAP_AFTER_SECONDS,
            help="seconds without a heartbeat before a record counts as abandoned",
        )

    def handle(self, *args: object, stale_after: float, **options: object) -> None:
        reaped = records_reap(stale_after_seconds=stale_after)
        self.stdout.write(f"reaped {len(reaped)} records" + (f": {reaped}" if reaped else ""))
