"""A CycloneDX SBOM (JSON, spec 1.6) of a built image: every Python package in its /opt/venv and every
Debian package, with the image's provenance labels.

`make sbom` writes one per local image (scripts/sbom.py, cli/sbom.py); `make push` one per pushed image.

The Python part is CycloneDX's own generator (`cyclonedx-py environment`, package cyclonedx-bom, locked
with hashes in requirements/sbom.lock) run inside the image by the image's own /opt/venv interpreter, so
it reads the installed packages' metadata, not what a lock says should be there. The tool is mounted
read-only (build/sbom-tool) and never installed into the image. dpkg, also inside the image, lists the
Debian packages; they are added as `pkg:deb` components.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from ..settings import ROOT
from .provenance import Docker, ImageRef, ProvenanceError

TOOL = ROOT / "build" / "sbom-tool"
TOOL_LOCK = ROOT / "requirements" / "sbom.lock"
VENV_PYTHON = "/opt/venv/bin/python"
# -I: the tool's own process ignores the image's PYTHONPATH; the tool then asks the venv interpreter (a
# child that does not inherit this sys.path) where its packages are, so the tool never lists itself.
RUN_TOOL = (
    "import runpy, sys; sys.path.insert(0, '/sbom-tool'); "
    "runpy.run_module('cyclonedx_py', run_name='__main__', alter_sys=True)"
)
DPKG = "cat /etc/os-release; echo ---; dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'"


def install_tool() -> Path:
    """build/sbom-tool, (re)installed from the hashed lock when the lock changed."""
    stamp = TOOL / "sbom.lock"
    if not stamp.exists() or stamp.read_text() != TOOL_LOCK.read_text():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--require-hashes",
                "--no-deps",
                "--upgrade",
                "--target",
                str(TOOL),
                "-r",
                str(TOOL_LOCK),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise ProvenanceError(
                f"installing the SBOM tool from {TOOL_LOCK} failed (a hash mismatch means the "
                f"file is not the one locked; `make lock` regenerates the lock):\n{done.stderr[-2000:]}"
            )
        stamp.write_text(TOOL_LOCK.read_text())
    return TOOL


def python_bom(image: str, docker: Docker) -> dict:
    try:
        out = docker.run(
            "run",
            "--rm",
            "--network",
            "none",
            "--volume",
            f"{install_tool()}:/sbom-tool:ro",
            "--entrypoint",
            VENV_PYTHON,
            image,
            "-I",
            "-c",
            RUN_TOOL,
            "environment",
            "--output-format",
            "JSON",
            "--spec-version",
            "1.6",
            "--output-reproducible",
            VENV_PYTHON,
        )
    except ProvenanceError as err:
        raise ProvenanceError(
            f"cyclonedx-py could not list the Python packages of {image} (it needs the "
            f"image's {VENV_PYTHON}: is it an image of docker/Dockerfile?): {err}"
        ) from None
    return json.loads(out)


def debian_components(image: str, docker: Docker) -> list[dict]:
    out = docker.run("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", DPKG)
    release, _, packages = out.partition("---\n")
    os_release = dict(line.split("=", 1) for line in release.splitlines() if "=" in line)
    distro = f"{os_release.get('ID', 'debian')}-{os_release.get('VERSION_ID', '').strip(chr(34))}"
    components = []
    for line in packages.splitlines():
        name, version, arch = line.split("\t")
        purl = f"pkg:deb/debian/{name}@{quote(version, safe='')}?arch={arch}&distro={distro}"
        components.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl})
    return components


def sbom(image: str, docker: Docker) -> dict:
    """The image's BOM: cyclonedx-py's, plus the Debian packages, with the image as the main component."""
    bom = python_bom(image, docker)
    debian = debian_components(image, docker)
    bom["components"] = bom.get("components", []) + debian
    bom.setdefault("dependencies", []).extend({"ref": c["bom-ref"]} for c in debian)
    labels = docker.labels(image)
    ref = ImageRef.parse(image)
    bom.setdefault("metadata", {})["component"] = {
        "type": "container",
        "bom-ref": image,
        "name": ref.repository,
        "version": ref.tag,
        "properties": [{"name": key, "value": value} for key, value in sorted(labels.items())],
    }
    return bom


def write(image: str, path: Path, docker: Docker) -> Path:
    bom = sbom(image, docker)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n")
    python = sum(1 for c in bom["components"] if c.get("purl", "").startswith("pkg:pypi/"))
    print(f"SBOM of {image}: {python} Python packages, {len(bom['components']) - python} others -> {path}")
    return path
