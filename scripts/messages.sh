#!/usr/bin/env bash
# The admin's Chinese words (locale/): `make messages` after adding or changing a string
# marked for translation. Collects every marked string of the project's code and templates
# into locale/zh_Hans/ (new ones untranslated, changed ones marked fuzzy, removed ones
# dropped), then compiles it and locale/django/zh_Hans/ (Django's own words its catalogs
# lack, kept by hand). Translate what it reports untranslated or fuzzy, and run it again.
# Needs GNU gettext (scripts/system-deps.sh installs it). PY: the project's Python.
set -euo pipefail
PY=${PY:-.venv/bin/python}
# Settings need a SECRET_KEY outside development; collecting strings is development.
DEBUG=1 "$PY" manage.py makemessages --locale zh_Hans --add-location file --no-obsolete \
  --ignore node_modules --ignore static --ignore staticfiles --ignore var \
  --ignore frontend --ignore miniprogram --ignore tests --ignore bench >/dev/null
for catalog in locale/zh_Hans/LC_MESSAGES/django locale/django/zh_Hans/LC_MESSAGES/django \
  locale/django/zh_Hans/LC_MESSAGES/djangojs; do
  printf '%s: ' "$catalog" >&2
  msgfmt --check --statistics -o "$catalog.mo" "$catalog.po"
done
