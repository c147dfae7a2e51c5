"""A real registry for push tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, with its
own config, htpasswd login and a temp storage dir; plus small images built by the real `make build`
(labels, inputs digest) from a small context, to push through the real code path in seconds."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import requests

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt hashes, the only kind the registry's htpasswd accepts (libxcrypt makes them)

USER, PASSWORD = "ci", "registry-test-password"


@dataclass(frozen=True)
class LocalRegistry:
    address: str
    user: str
    password: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_registry(workdir: Path):
    """Start the registry; yields LocalRegistry; stops it (and logs docker out) afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USER}:{crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    config = workdir / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {workdir / "storage"}
http:
  addr: 127.0.0.1:{port}
  secret: {uuid.uuid4().hex}
auth:
  htpasswd:
    realm: test-registry
    path: {htpasswd}
""")
    log = open(workdir / "registry.log", "w")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            if proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(workdir / 'registry.log').read_text()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://{address}/v2/", auth=(USER, PASSWORD), timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("docker-registry did not answer on /v2/ within 10 s")
        yield LocalRegistry(address, USER, PASSWORD)
    finally:
        subprocess.run(["docker", "logout", address], capture_output=True)
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


# The images `make build` builds, in its order (`make print-images`).
ROLES = ("train", "serve", "serve-cpu")

# Like docker/Dockerfile: a target per role on the project's base image, with an /opt/venv (empty: the
# SBOM tool runs with the image's own venv interpreter) and one file copied from the context.
SMALL_DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS train
RUN python3 -m venv --without-pip /opt/venv
COPY content.txt /content.txt
FROM train AS serve
FROM train AS serve-cpu
"""


def small_context(folder: Path, content: str) -> Path:
    """A build context for `make build BUILD_CONTEXT=...`: its Dockerfile, .dockerignore and one input."""
    (folder / "docker").mkdir(parents=True, exist_ok=True)
    (folder / "docker" / "Dockerfile").write_text(SMALL_DOCKERFILE)
    (folder / ".dockerignore").write_text("*\n!content.txt\n")
    (folder / "content.txt").write_text(content)
    return folder


def image_variables(refs: dict[str, str]) -> dict[str, str]:
    """The Makefile's variable for each role's image (TRAIN_IMAGE, SERVE_IMAGE, SERVE_CPU_IMAGE), every role
    given: one left out would be built or pushed under the real image's name."""
    return {f"{role.upper().replace('-', '_')}_IMAGE": refs[role] for role in ROLES}


def make_build(root: Path, context: Path, refs: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    """`make build` of the small images (role -> ref), as a user (or CodeBuild) runs it."""
    names = [f"{name}={ref}" for name, ref in image_variables(refs).items()]
    done = subprocess.run(
        ["make", "-s", "build", f"BUILD_CONTEXT={context}", *names, *flags],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def labels(ref: str) -> dict[str, str]:
    return json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", ref],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )


def image_id(ref: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref], check=True, capture_output=True, text=True
    ).stdout.strip()


def remove_images(*refs: str) -> None:
    subprocess.run(["docker", "image", "rm", "-f", *refs], capture_output=True)
