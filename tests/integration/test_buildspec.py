"""buildspec.yml, run as CodeBuild runs it: every phase's commands in order in one bash (variables carry
over), CodeBuild's environment variables set, the buildspec's own variables under the overrides a
StartBuild call would give. Target: the local registry; BUILD_CONTEXT (documented in the buildspec)
makes `make build` build small images instead of the 6 GB ones, and PYTEST_ADDOPTS narrows the unit
tests of pre_build to a few (the full unit suite runs in `make test` anyway). A typo in a command, a
phase or a key fails the test."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from .jobs import ROOT
from .registry import ROLES, image_variables, remove_images, small_context

PHASES = ("install", "pre_build", "build", "post_build")
TOP_KEYS = {"version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"}
ENV_KEYS = {"shell", "variables", "parameter-store", "exported-variables", "secrets-manager", "git-credential-helper"}
PHASE_KEYS = {"run-as", "on-failure", "runtime-versions", "commands", "finally"}


def load_buildspec(path: Path) -> dict:
    """The buildspec, checked against the keys CodeBuild knows (a misspelt key is an error there too)."""
    spec = yaml.safe_load(path.read_text())
    problems = [f"unknown top-level key {k!r}" for k in set(spec) - TOP_KEYS]
    if str(spec.get("version")) != "0.2":
        problems.append(f"version {spec.get('version')!r} (expected 0.2)")
    problems += [f"unknown env key {k!r}" for k in set(spec.get("env", {})) - ENV_KEYS]
    for phase, body in spec.get("phases", {}).items():
        if phase not in PHASES:
            problems.append(f"unknown phase {phase!r}")
        elif not isinstance(body, dict) or not body.get("commands"):
            problems.append(f"phase {phase} has no commands")
        if isinstance(body, dict):
            problems += [f"phase {phase}: unknown key {k!r}" for k in set(body) - PHASE_KEYS]
            problems += [
                f"phase {phase}: command {i + 1} is not a string (an unquoted ': ' in YAML?)"
                for i, c in enumerate(body.get("commands") or [])
                if not isinstance(c, str)
            ]
    if problems:
        raise ValueError(f"{path.name}: " + "; ".join(sorted(problems)))
    return spec


def phase_script(spec: dict, exported_file: Path) -> str:
    """One bash script: each command runs, and a failing one stops the build like CodeBuild does."""
    lines = ['cd "$CODEBUILD_SRC_DIR"']
    for phase in PHASES:
        for i, command in enumerate(spec["phases"].get(phase, {}).get("commands", [])):
            lines.append(f'echo "[{phase}] running command {i + 1} at $(date +%T)"')
            lines.append(command.rstrip("\n"))
            lines.append(
                f'rc=$?; if [ $rc -ne 0 ]; then echo "[{phase}] command {i + 1} failed with exit '
                f'status $rc: "{shlex.quote(command[:200])} >&2; exit $rc; fi'
            )
    for name in spec.get("env", {}).get("exported-variables", []):
        lines.append(f"printf '%s=%s\\n' {name} \"${name}\" >> {shlex.quote(str(exported_file))}")
    return "\n".join(lines) + "\n"


def codebuild_env(spec: dict, overrides: dict[str, str]) -> dict[str, str]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    env = {
        **os.environ,
        "CODEBUILD_CI": "true",
        "CODEBUILD_SRC_DIR": str(ROOT),
        "CODEBUILD_BUILD_ID": f"image-classifier:{uuid.uuid4()}",
        "CODEBUILD_BUILD_NUMBER": "1",
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        "CODEBUILD_INITIATOR": "test",
        "CODEBUILD_RESOLVED_SOURCE_VERSION": commit,
        "CODEBUILD_SOURCE_VERSION": commit,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.update({k: str(v) for k, v in spec.get("env", {}).get("variables", {}).items()})
    env.update(overrides)
    return env


def run_buildspec(path: Path, overrides: dict[str, str], workdir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    spec = load_buildspec(path)
    shell = spec.get("env", {}).get("shell", "sh")
    exported = workdir / "exported.env"
    done = subprocess.run(
        [shell, "-c", phase_script(spec, exported)],
        env=codebuild_env(spec, overrides),
        capture_output=True,
        text=True,
        timeout=600,
    )
    values = dict(line.split("=", 1) for line in exported.read_text().splitlines()) if exported.exists() else {}
    return done, values


@pytest.fixture
def keep_images_record():
    """The buildspec writes build/images.json and the SBOMs in the source tree, as in CodeBuild: put the
    developer's back."""
    files = [ROOT / "build" / name for name in ("images.json", *(f"sbom-{role}.cdx.json" for role in ROLES))]
    saved = {path: path.read_bytes() if path.exists() else None for path in files}
    yield files[0]
    for path, content in saved.items():
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)


def test_buildspec_phases_push_and_export_the_image_uris(local_registry, keep_images_record, tmp_path):
    tag = uuid.uuid4().hex[:12]
    refs = {role: f"{local_registry.address}/sagemaker-image-classifier-{role}:{tag}" for role in ROLES}
    try:
        done, exported = run_buildspec(
            ROOT / "buildspec.yml",
            {
                "REGISTRY": local_registry.address,
                "REGISTRY_USER": local_registry.user,
                "REGISTRY_PASSWORD": local_registry.password,
                "BUILD_CONTEXT": str(small_context(tmp_path / "context", f"buildspec {tag}")),
                **image_variables(refs),
                "PYTEST_ADDOPTS": "-k 'test_settings or test_push'",
            },
            tmp_path,
        )
        log = done.stdout[-6000:] + done.stderr[-6000:]
        assert done.returncode == 0, log
        # pre_build ran the unit tests: pytest's summary line, all passed.
        summary = re.search(
            r"^(\d+) passed(, \d+ (deselected|skipped|warnings?))* in [\d.]+s", done.stdout, re.MULTILINE
        )
        assert summary and int(summary[1]) > 0, log
        pushed = json.loads(keep_images_record.read_text())
    finally:
        remove_images(*refs.values())
    for role, name in zip(ROLES, image_variables(refs), strict=True):  # TRAIN_IMAGE -> TRAIN_IMAGE_URI...
        assert exported[f"{name}_URI"] == pushed[role]["uri"]
    assert exported["TRAIN_IMAGE_URI"].startswith(f"{local_registry.address}/sagemaker-image-classifier-train@sha256:")
    assert exported["IMAGE_TAG"]
    spec = load_buildspec(ROOT / "buildspec.yml")
    assert all((ROOT / f).exists() for f in spec["artifacts"]["files"])
    assert {f"build/{pushed[role]['sbom']}" for role in ROLES} <= set(spec["artifacts"]["files"])
    # Every exported artifact describes the images this build pushed.
    for role in ROLES:
        assert pushed[role]["labels"]["org.opencontainers.image.version"] == tag
        bom = json.loads((ROOT / "build" / pushed[role]["sbom"]).read_text())
        assert bom["metadata"]["component"]["bom-ref"] == refs[role]


def test_a_misspelt_key_is_caught(tmp_path):
    broken = tmp_path / "buildspec.yml"
    broken.write_text((ROOT / "buildspec.yml").read_text().replace("    commands:", "    comands:", 1))
    with pytest.raises(ValueError, match="unknown key 'comands'"):
        load_buildspec(broken)
