#!/usr/bin/env bash
# Debian packages the test suite drives for real: nginx (proxying tests).
# Installs only what is missing; needs root (as on CI and the project's machines).
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts a system nginx on port 80; the tests run their own.
(command -v systemctl >/dev/null && systemctl disable --now nginx >/dev/null 2>&1) || true
(nginx -s quit >/dev/null 2>&1) || true
