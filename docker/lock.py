"""Regenerate the hashed lock files from the hand-written inputs.

    python docker/lock.py [--upgrade]        (make lock; make lock LOCK_ARGS=--upgrade)

    docker/requirements/base.in                 -> base.txt      the base stage (train and serve images)
    docker/requirements/{train,serve}.in        -> {train,serve}.txt  what each image adds on top of base
    docker/requirements/train-nodeps.in         -> train-nodeps.txt   hand-pinned, installed --no-deps
    docker/requirements/serve-cpu.in            -> serve-cpu.txt      the serve-cpu image's whole venv (no
                                                   torch), at the versions the other locks hold (IMAGE_LOCKS)
    pyproject.toml (+ its build requirements)   -> requirements/host.lock  the host venv (make setup)
    pyproject.toml's [test] group               -> requirements/test.lock  what the tests add to it
    requirements/sbom.in                        -> requirements/sbom.lock  the SBOM tool (scripts/sbom.py)

Every line is `name==version --hash=sha256:...`: the hash of the one file pip chose for this platform
(a wheel, or an sdist marked `# sdist`), taken from pip's own resolution report, so every install can run
with --require-hashes. Versions already locked are kept (passed to pip as constraints) unless --upgrade:
adding a package to an .in file changes nothing else. Run it with the host's CPython 3.11 on Linux
x86_64, the images' platform; the hashes are of that platform's files.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker" / "requirements"
HOST = ROOT / "requirements"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")
SDIST_MARK = "# sdist"
# A line of a generated lock (docker/wheelhouse.py reads them with this too).
LOCKED = re.compile(PIN.pattern + r" --hash=sha256:(?P<sha256>[0-9a-f]{64})(?P<sdist>\s+" + SDIST_MARK + r"\b)?")


@dataclass(frozen=True)
class ImageLock:
    """One of docker/requirements/*.txt, resolved from the .in files of `extends` and its own."""

    name: str
    header: str
    # Locks installed before it in the same venv: it must not change their pins, and writes what it adds.
    extends: tuple[str, ...] = ()
    # Locks whose version of every package it shares with them it must repeat (one image may not decode,
    # resize or run a model with another version than its sibling).
    agrees: tuple[str, ...] = ()


IMAGE_LOCKS = (
    ImageLock("base", "base stage (both images)"),
    ImageLock("train", "train image extras", extends=("base",)),
    # The training image's onnxruntime (and its dependencies): the version that scored the exports.
    ImageLock("serve", "serve image extras", extends=("base",), agrees=("train",)),
    # No torch: locked on its own, with the serve image's Pillow and gunicorn, the training image's
    # onnxruntime (what the exports were scored with), base's numpy.
    ImageLock(
        "serve-cpu",
        "the serve-cpu image's venv (no torch; versions shared with the other locks)",
        agrees=("base", "serve", "train"),
    ),
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str
    sdist: bool

    def line(self) -> str:
        mark = f"  {SDIST_MARK}: built into a wheel on the host (docker/wheelhouse.py)" if self.sdist else ""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}{mark}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """name -> version of the `name==version` lines of a requirements file (hashes and comments ignored)."""
    pins = {}
    if path.exists():
        for line in path.read_text().splitlines():
            found = PIN.match(line.strip())
            if found:
                pins[canonical(found[1])] = found[2]
    return pins


def resolve(args: list[str], keep: dict[str, str], what: str) -> dict[str, Pin]:
    """pip's resolution of `args` (requirement options), with the versions in `keep` held."""
    with tempfile.TemporaryDirectory() as tmp:
        report, constraints = Path(tmp) / "report.json", Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in keep.items()))
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-c",
            str(constraints),
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            advice = (
                (
                    " (a pin in an input now conflicts with a version held: the lock's own, or one it shares with "
                    "another lock (IMAGE_LOCKS); `make lock LOCK_ARGS=--upgrade` re-resolves them all)"
                )
                if keep
                else ""
            )
            sys.exit(f"pip could not resolve {what}{advice}:\n{done.stderr[-3000:]}")
        data = json.loads(report.read_text())
    pins = {}
    for item in data["install"]:
        archive = item["download_info"].get("archive_info")
        if archive is None:  # the project's own folders (pyproject.toml, container_src): not locked
            continue
        name = canonical(item["metadata"]["name"])
        sha256 = archive.get("hashes", {}).get("sha256")
        if not sha256:
            sys.exit(
                f"{what}: pip's index gave no sha256 for {name} ({item['download_info']['url']}); "
                "use an index that publishes hashes (PyPI does)"
            )
        url = item["download_info"]["url"]
        pins[name] = Pin(name, item["metadata"]["version"], sha256, not url.endswith(".whl"))
    return pins


def write(path: Path, pins: dict[str, Pin], header: str) -> None:
    lines = [f"# {header}", "# Generated by docker/lock.py; do not edit by hand."]
    lines += [pins[name].line() for name in sorted(pins)]
    path.write_text("\n".join(lines) + "\n")
    print(f"{path.relative_to(ROOT)}: {len(pins)} packages")


def lock_images(upgrade: bool) -> None:
    def held(*names: str) -> dict[str, str]:
        # Per image: train and serve may lock different versions of a dependency they share.
        return {} if upgrade else {n: v for name in names for n, v in read_pins(DOCKER / f"{name}.txt").items()}

    locked: dict[str, dict[str, Pin]] = {}  # this run's, lock by lock
    for lock in IMAGE_LOCKS:
        inputs = [arg for name in (*lock.extends, lock.name) for arg in ("-r", str(DOCKER / f"{name}.in"))]
        # The versions it must repeat are this run's (also under --upgrade), and win over its own lock's.
        shared = {n: pin.version for name in lock.agrees for n, pin in locked[name].items()}
        full = resolve(inputs, {**held(*lock.extends, lock.name), **shared}, f"{lock.name}.in")
        under = {n: pin for name in lock.extends for n, pin in locked[name].items()}
        changed = sorted(n for n in under if n in full and full[n].version != under[n].version)
        if changed:
            bases = "/".join(lock.extends)
            sys.exit(f"{lock.name}.in changes {bases} pins {changed}: pin them in {bases}.in instead")
        # Only where two of the agreed locks differ from each other (pip held one of the two versions).
        differ = sorted(
            f"{n}=={full[n].version} ({name}.txt: {locked[name][n].version})"
            for name in lock.agrees
            for n in full
            if n in locked[name] and locked[name][n].version != full[n].version
        )
        if differ:
            sys.exit(
                f"{lock.name}.txt cannot repeat every version it shares with {lock.agrees}: {differ}; "
                "make those locks agree first"
            )
        locked[lock.name] = {n: pin for n, pin in full.items() if n not in under}
        write(DOCKER / f"{lock.name}.txt", locked[lock.name], lock.header)
        if lock.name == "train":
            lock_nodeps(DOCKER / "train-nodeps.in", full)


def lock_nodeps(source: Path, locked: dict[str, Pin]) -> None:
    """train-nodeps.in: packages whose declared requirements conflict with the lock (smdebug's
    protobuf<=3.20.3), pinned by hand and installed --no-deps. Their imports belong in train.in."""
    for line in source.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        found = PIN.match(line)
        if not found or found[0] != line:
            sys.exit(f"{source.relative_to(ROOT)}: {line!r} must be pinned as NAME==VERSION")
        if canonical(found[1]) in locked:
            sys.exit(f"{source.relative_to(ROOT)}: {found[1]} is also in the resolved lock; keep it in one place")
    pins = resolve(["--no-deps", "-r", str(source)], {}, source.name)
    write(source.with_suffix(".txt"), pins, f"installed with --no-deps after train.txt ({source.name} says why)")


def lock_host(upgrade: bool) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    held = {} if upgrade else read_pins(HOST / "host.lock")
    # The build requirements too: make setup installs the project's own packages --no-build-isolation,
    # so the setuptools that builds them comes from this lock, hash-checked, not from a fresh download.
    build = project["build-system"]["requires"]
    pins = resolve([str(ROOT), str(ROOT / "container_src"), *build], held, "pyproject.toml")
    write(HOST / "host.lock", pins, "the host venv (make setup): pyproject.toml's closure + its build requirements")
    # The test group over it: the host's versions held, so installing both changes none of them.
    test_held = {} if upgrade else read_pins(HOST / "test.lock")
    full = resolve(
        [f"{ROOT}[test]", str(ROOT / "container_src"), *build],
        {**test_held, **{n: pin.version for n, pin in pins.items()}},
        "pyproject.toml [test]",
    )
    changed = sorted(n for n in pins if n in full and full[n].version != pins[n].version)
    if changed:
        sys.exit(f"the test group changes host pins {changed}: pin them in pyproject.toml's dependencies")
    write(
        HOST / "test.lock",
        {n: pin for n, pin in full.items() if n not in pins},
        "what the tests add to the host venv (make setup): pyproject.toml's [test] group over host.lock",
    )
    ui = resolve(
        ["-r", str(HOST / "mlflow-ui.in")], {} if upgrade else read_pins(HOST / "mlflow-ui.lock"), "mlflow-ui.in"
    )
    write(HOST / "mlflow-ui.lock", ui, "the MLflow UI's own venv (make mlflow-ui)")
    tool = resolve(["-r", str(HOST / "sbom.in")], {} if upgrade else read_pins(HOST / "sbom.lock"), "sbom.in")
    write(HOST / "sbom.lock", tool, "the SBOM tool scripts/sbom.py runs inside each image")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--upgrade", action="store_true", help="re-resolve every version (default: keep the locked ones)"
    )
    args = parser.parse_args(argv)
    lock_images(args.upgrade)
    lock_host(args.upgrade)


if __name__ == "__main__":
    main()
