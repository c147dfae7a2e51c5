#!/usr/bin/env bash
# Builds one target of a Dockerfile with no network needed during the build, labelled with its
# provenance (scripts/provenance.py: commit, source, time, version, base, digest of the build inputs).
# Usage: docker/build.sh TARGET IMAGE_REF
#   env: BASE_IMAGE (required: the Makefile's), LOCAL_BASE_IMAGE, PYTHON (the host venv's),
#        DOCKER_BUILD_FLAGS (extra `docker build` flags, e.g. --no-cache),
#        CONTEXT (the build context holding docker/Dockerfile; default: this repository; the tests build
#        small images through this same script)
#  - BASE_IMAGE is used when present or pullable; otherwise an equivalent is bootstrapped locally
#    (docker/bootstrap_base.sh) as LOCAL_BASE_IMAGE, named after the hash of its recipe so that a
#    changed recipe makes a new one.
#  - the wheelhouse is filled and checked against the locks' hashes (docker/wheelhouse.py).
set -euo pipefail
target=${1:?usage: build.sh TARGET IMAGE_REF}
image=${2:?usage: build.sh TARGET IMAGE_REF}
cd "$(dirname "$0")/.."
base=${BASE_IMAGE:?BASE_IMAGE is not set: build with make build (the Makefile defines it)}
python=${PYTHON:-.venv/bin/python}
context=${CONTEXT:-.}
recipe=$(sha256sum docker/bootstrap_base.sh | cut -c1-12)
local_base=${LOCAL_BASE_IMAGE:-local/python:3.11-slim-bookworm-$recipe}

if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
  echo "base image $base cannot be pulled here: using a locally bootstrapped equivalent ($local_base)"
  docker/bootstrap_base.sh "$local_base"
  base=$local_base
fi
"$python" docker/wheelhouse.py
mkdir -p build/weights
# Passed with --label, which both builders apply after the Dockerfile's last instruction: the labels
# that change on every build (created) never invalidate a cached layer.
# A command substitution, not `< <(...)`: under `set -e` a provenance failure stops the build here
# (a process substitution's exit status is lost, and the image would be built without its labels).
label_lines=$("$python" scripts/provenance.py labels --image "$image" --base "$base" --context "$context")
labels=()
while IFS= read -r label; do labels+=(--label "$label"); done <<< "$label_lines"
echo "building $image (target $target, base $base)..."
start=$(date +%s)
# TARGET: the Dockerfile's serving stage goes on the packages of the target being built.
# shellcheck disable=SC2086  # DOCKER_BUILD_FLAGS is a list of flags, split on purpose
docker build ${DOCKER_BUILD_FLAGS:-} --target "$target" --build-arg BASE_IMAGE="$base" --build-arg TARGET="$target" \
  "${labels[@]}" \
  -f "$context/docker/Dockerfile" -t "$image" "$context"
echo "built $image in $(( $(date +%s) - start ))s; $(printf '%s\n' "${labels[@]}" | grep -F inputs.digest=)"
