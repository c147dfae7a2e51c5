"""The local image names: the Makefile defines them (IMAGE_NAME, TAG from the commit); ask it, never repeat them."""

from __future__ import annotations

import os
import subprocess

from ..settings import ROOT

# `make print-images` prints one per line, in this order; the environment variables override each.
ROLES = ("train", "serve", "serve-cpu")
ENV = {"train": "TRAIN_IMAGE", "serve": "SERVE_IMAGE", "serve-cpu": "SERVE_CPU_IMAGE"}


def local_image(role: str) -> str:
    """The local image of `role` ('train', 'serve', 'serve-cpu'): $TRAIN_IMAGE etc. when set, else the
    Makefile's name for the checkout's commit."""
    if role not in ROLES:
        raise ValueError(f"image role {role!r} is not one of {', '.join(ROLES)}")
    if os.environ.get(ENV[role]):
        return os.environ[ENV[role]]
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "print-images"], capture_output=True, text=True, check=True)
    return dict(zip(ROLES, out.stdout.split(), strict=True))[role]


def built(image: str) -> bool:
    """Whether the local Docker engine has `image`."""
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
