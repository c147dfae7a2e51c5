#!/usr/bin/env bash
# Makes sure a Docker engine answers. On Debian as root: installs docker.io + docker-compose
# (compose v1 is what SageMaker local mode finds) and starts dockerd in the background.
# Elsewhere: says exactly what is missing and fails.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "error: no Docker engine answers 'docker info'. Install Docker Engine and docker-compose" \
       "(or the compose plugin) and start it, then run this again." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
  echo "installing the Docker engine (docker.io, docker-compose) from Debian..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null
fi
echo "starting dockerd..."
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && { echo "docker engine is up"; exit 0; }
  sleep 1
done
echo "error: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
