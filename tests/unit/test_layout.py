"""The package's shape: the import contracts in pyproject.toml ([tool.importlinter]), checked by
import-linter on the real tree, and shown to catch a wrong import on a copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    "module, wrong_import, broken",
    [
        # Serving importing the trainer: the serving images hold no training code.
        (
            "container_src/classifier/serving/handler.py",
            "from classifier.training import trainer",
            "classifier.serving.handler -> classifier.training.trainer",
        ),
        # A cycle inside model: back up its layers.
        (
            "container_src/classifier/model/runtime_names.py",
            "from classifier.model import runtimes",
            "classifier.model.runtime_names -> classifier.model.runtimes",
        ),
        # A command calling another command (what teardown.py once did with cli/deploy.py's delete).
        (
            "scripts/classifier_host/cli/teardown.py",
            "from classifier_host.cli import deploy",
            "classifier_host.cli.teardown -> classifier_host.cli.deploy",
        ),
    ],
    ids=["serving-imports-training", "cycle-in-model", "command-imports-command"],
)
def test_a_wrong_import_breaks_the_build(tmp_path, module, wrong_import, broken):
    sources = copy_tree(tmp_path)
    path = sources / module
    path.write_text(path.read_text() + f"\n{wrong_import}  # the wrong way\n")
    done = lint(ROOT, sources)
    assert done.returncode == 1
    assert broken in done.stdout
