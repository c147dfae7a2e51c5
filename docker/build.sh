#!/usr/bin/env bash
# Builds one target of docker/Dockerfile with no network needed during the build.
# Usage: docker/build.sh TARGET IMAGE_REF   (env: BASE_IMAGE, LOCAL_BASE_IMAGE, PYTHON)
#  - BASE_IMAGE is used when present or pullable; otherwise an equivalent is bootstrapped locally
#    (docker/bootstrap_base.sh) as LOCAL_BASE_IMAGE.
#  - the wheelhouse is filled from the host's pip (docker/wheelhouse.sh) when incomplete.
set -euo pipefail
target=${1:?usage: build.sh TARGET IMAGE_REF}
image=${2:?usage: build.sh TARGET IMAGE_REF}
cd "$(dirname "$0")/.."
base=${BASE_IMAGE:-public.ecr.aws/docker/library/python:3.11-slim-bookworm}
local_base=${LOCAL_BASE_IMAGE:-local/python:3.11-slim-bookworm}

if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
  echo "base image $base cannot be pulled here: using a locally bootstrapped equivalent ($local_base)"
  docker/bootstrap_base.sh "$local_base"
  base=$local_base
fi
docker/wheelhouse.sh "${PYTHON:-python3}"
mkdir -p build/weights
echo "building $image (target $target, base $base)..."
start=$(date +%s)
docker build --target "$target" --build-arg BASE_IMAGE="$base" -f docker/Dockerfile -t "$image" .
echo "built $image in $(( $(date +%s) - start ))s"
