#!/usr/bin/env bash
# Makes a local base image equivalent to python:3.11-slim-bookworm where no registry can be
# reached: debootstrap a minimal Debian bookworm with Python 3.11, then `docker import` it.
# Usage: docker/bootstrap_base.sh IMAGE:TAG   (does nothing when the image already exists)
set -euo pipefail
image=${1:?usage: bootstrap_base.sh IMAGE:TAG}
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already present"; exit 0
fi
if ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    echo "error: debootstrap is missing; install it (apt-get install debootstrap) as root" >&2; exit 1
  fi
fi
rootfs=$(mktemp -d /tmp/base-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "bootstrapping $image with debootstrap (about 2 minutes)..."
# Same package set as the python:3.11-slim-bookworm image plus a compiler, so the image can build
# sdists (sagemaker-training, sagemaker-inference) when the wheelhouse lacks a wheel for them.
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,python3-dev,gcc,ca-certificates \
  bookworm "$rootfs" http://deb.debian.org/debian >/tmp/debootstrap.log 2>&1 \
  || { tail -20 /tmp/debootstrap.log >&2; exit 1; }
# Leave the apt lists and caches out: they are ~40 MB and stale by the time anyone uses them.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# The image id differs on every machine (debootstrap writes timestamps): the label names the recipe
# (this script's hash), which is what scripts/provenance.py counts as the base in the inputs digest.
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' \
  -c "LABEL sagemaker-image-classifier.base.recipe=sha256:$(sha256sum "$0" | cut -d' ' -f1)" - "$image" >/dev/null
echo "base image $image ready"
