#!/usr/bin/env bash
# Makes sure Debian's registry server (distribution 2.8, package docker-registry) is installed: the
# integration tests start their own on 127.0.0.1 with a temp storage dir (nothing runs as a service).
set -euo pipefail
command -v docker-registry >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "error: docker-registry is not installed; install Debian's docker-registry package (or put a" \
       "distribution 'registry' binary on PATH as docker-registry)" >&2
  exit 1
fi
echo "installing docker-registry from Debian..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
# The package may start its service (all interfaces, its own config) on install; the tests need none of it.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
elif [ -x /etc/init.d/docker-registry ]; then
  /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi
