"""The package's shape: the import contracts in pyproject.toml ([tool.importlinter]), checked by
import-linter on the real tree, and shown to catch a wrong import on a copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path, sources: Path) -> subprocess.CompletedProcess:
    # The copy's packages first on the path: import-linter reads the packages Python would import.
    env = {**os.environ, "PYTHONPATH": f"{sources / 'container_src'}{os.pathsep}{sources / 'scripts'}"}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=sources,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_every_contract():
    done = lint(ROOT, ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def copy_tree(tmp_path: Path) -> Path:
    for part in ("container_src/classifier", "scripts/classifier_host"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_serving_importing_the_trainer_breaks_the_build(tmp_path):
    sources = copy_tree(tmp_path)
    handler = sources / "container_src/classifier/serving/handler.py"
    handler.write_text(handler.read_text() + "\nfrom classifier.training import trainer  # wrong way\n")
    done = lint(ROOT, sources)
    assert done.returncode == 1
    assert "classifier.serving.handler -> classifier.training.trainer" in done.stdout


def test_a_cycle_inside_model_breaks_the_build(tmp_path):
    sources = copy_tree(tmp_path)
    names = sources / "container_src/classifier/model/runtime_names.py"
    names.write_text(names.read_text() + "\nfrom classifier.model import runtimes  # back up the layers\n")
    done = lint(ROOT, sources)
    assert done.returncode == 1
    assert "classifier.model.runtime_names -> classifier.model.runtimes" in done.stdout


def test_a_command_calling_another_command_breaks_the_build(tmp_path):
    """What teardown.py once did (it called cli/deploy.py's delete): the shared step belongs in the package."""
    sources = copy_tree(tmp_path)
    teardown = sources / "scripts/classifier_host/cli/teardown.py"
    teardown.write_text(teardown.read_text() + "\nfrom classifier_host.cli import deploy  # a command's code\n")
    done = lint(ROOT, sources)
    assert done.returncode == 1
    assert "classifier_host.cli.teardown -> classifier_host.cli.deploy" in done.stdout
