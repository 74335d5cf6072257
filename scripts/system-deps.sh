#!/usr/bin/env bash
# Debian packages the test suite drives for real: nginx (proxying tests), chromium (the H5
# page's browser tests, driven by Playwright through executable_path: never a browser
# download), the CJK and emoji fonts its screenshots need, and GNU gettext (the admin's
# catalog in locale/ is checked against the code's strings: `make messages`).
# Installs only what is missing; needs root (as on CI and the project's machines).
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v msgfmt >/dev/null 2>&1 || missing+=(gettext)
for font in fonts-noto-cjk fonts-noto-color-emoji; do
  dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "ok installed" || missing+=("$font")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The nginx package starts a system nginx on port 80; the tests run their own.
(command -v systemctl >/dev/null && systemctl disable --now nginx >/dev/null 2>&1) || true
(nginx -s quit >/dev/null 2>&1) || true
