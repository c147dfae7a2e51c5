#!/usr/bin/env bash
# Fills build/wheelhouse with every pinned wheel the images install (cp311, manylinux x86_64),
# building the sdists (sagemaker-training, sagemaker-inference...) once here, so `docker build`
# needs neither network nor a compiler. Run with the host's Python 3.11 on Linux x86_64.
# Usage: docker/wheelhouse.sh [PYTHON]   (fast when the wheels are already there)
set -euo pipefail
python=${1:-python3}
cd "$(dirname "$0")/.."
mkdir -p build/wheelhouse
reqs=(-r docker/requirements/base.txt -r docker/requirements/train.txt -r docker/requirements/serve.txt
      -r docker/requirements/train-nodeps.txt)
# Already complete? (every pinned name==version has a file) -> nothing to do, no network needed.
missing=$("$python" - "${reqs[@]}" <<'PY'
import re, sys, pathlib
have = {re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() + "==" + p.name.split("-")[1]
        for p in pathlib.Path("build/wheelhouse").glob("*.whl")}
for path in sys.argv[2::2]:
    for line in open(path):
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            if re.sub(r"[-_.]+", "_", name).lower() + "==" + version not in have:
                print(line)
PY
)
if [ -z "$missing" ]; then echo "wheelhouse complete"; exit 0; fi
echo "filling build/wheelhouse ($(echo "$missing" | wc -l) wheels missing)..."
# One lock file at a time: train and serve may pin different versions of a shared dependency.
for lock in docker/requirements/{base,train,serve,train-nodeps}.txt; do
  "$python" -m pip wheel --quiet --no-deps --wheel-dir build/wheelhouse -r "$lock" 2>build/wheelhouse.log \
    || { grep -v "is ignored: it is neither" build/wheelhouse.log >&2; exit 1; }
done
echo "wheelhouse ready: $(ls build/wheelhouse | wc -l) wheels, $(du -sh build/wheelhouse | cut -f1)"
