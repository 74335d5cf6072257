import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    # Fails (SystemExit) when a model was changed without `makemigrations`.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
