"""A real registry for push tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, with its
own config, htpasswd login and a temp storage dir; plus tiny images to push through the real code path."""
from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import tarfile
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
    rootdirectory: {workdir / 'storage'}
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


def tiny_image(ref: str, content: str) -> str:
    """Import a one-file image as `ref` (a few hundred bytes: pushes in a second); returns its id."""
    data = content.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "import", "-", ref], input=buffer.getvalue(), check=True, capture_output=True)
    return image_id(ref)


def image_id(ref: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], check=True,
                          capture_output=True, text=True).stdout.strip()


def remove_images(*refs: str) -> None:
    subprocess.run(["docker", "image", "rm", "-f", *refs], capture_output=True)
