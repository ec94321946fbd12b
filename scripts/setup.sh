#!/usr/bin/env bash
# Makes a fresh machine ready to run the fleet and its tests: nats-server (Debian/Ubuntu package) and the npm
# dependencies, built. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  echo "setup: installing nats-server" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
  else
    echo "setup: no apt-get here; install nats-server (https://nats.io) and put it on the PATH" >&2
    exit 1
  fi
fi

# Debian's chromium for the dashboard's browser test (playwright-core drives it; it never downloads a browser)
if [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing chromium" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: no apt-get here; install chromium at /usr/bin/chromium (the dashboard's browser test needs it under CI)" >&2
    exit 1
  fi
fi

# iproute2's `ip` gives the cluster tests a network namespace per "host" (as root; they fall back to loopback without it)
if [ "$(id -u)" = 0 ] && ! command -v ip >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing iproute2" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

# npm install (not ci: npm ci refuses a lock file without the other platforms' optional msgpackr-extract builds, which
# npm leaves out of it here) installs the locked versions and builds (the prepare script runs tsc); skipped when up to date
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f dist/cli/main.js ]; then
  echo "setup: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
fi
