from django.core.management.base import BaseCommand

from accounts.tickets import tickets_purge
from accounts.tokens import tokens_purge


class Command(BaseCommand):
    help = (
        "Delete expired and revoked bearer tokens and used or expired web-view tickets "
        "(live ones are kept). Run it daily (docs/deploy.md)."
    )

    def handle(self, *args: object, **options: object) -> None:
        tokens = tokens_purge()
        tickets = tickets_purge()
        self.stdout.write(f"purged {tokens} tokens and {tickets} web-view tickets")
