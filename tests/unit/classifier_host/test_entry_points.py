"""The commands: every scripts/*.py is a thin entry point into classifier_host.cli, the console scripts
name the same commands, and `--help` answers without loading the SageMaker SDK, torch or boto3."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ENTRY_POINTS = sorted(p for p in (ROOT / "scripts").glob("*.py"))
# What would make `--help` slow (each takes 0.3-4 s to import here) or reach out at import.
HEAVY = ("sagemaker", "torch", "boto3", "botocore", "matplotlib", "optuna", "onnxruntime", "smdebug", "mlflow")


def test_there_are_entry_points():
    assert {"train.py", "tune.py", "deploy.py", "query.py", "report.py"} <= {p.name for p in ENTRY_POINTS}


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: p.name)
def test_an_entry_point_only_imports_its_command(path):
    tree = ast.parse(path.read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = {
        (node.module if isinstance(node, ast.ImportFrom) else None, tuple(alias.name for alias in node.names))
        for node in imports
    }
    assert names == {(None, ("sys",)), ("classifier_host.cli", (path.stem,))}, names
    assert len([n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]) == 0


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: p.name)
def test_help_loads_nothing_heavy(path):
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = [{str(path)!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(path)!r}, run_name='__main__')\n"
        "except SystemExit as end:\n"
        "    code = end.code\n"
        f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    code, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert code in (0, None) and "usage:" in done.stdout, done.stdout + done.stderr
    assert loaded == [], f"{path.name} --help imported {loaded}"


def test_every_command_has_a_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()}
    assert targets == {p.stem for p in ENTRY_POINTS}
    for name, target in scripts.items():  # classifier-<the script's name>
        assert target == f"classifier_host.cli.{name.removeprefix('classifier-').replace('-', '_')}:main"


def test_importing_the_host_package_changes_nothing():
    """No import-time side effects: the environment is the same after importing every module, and the
    SageMaker SDK is not loaded until a command needs it."""
    probe = (
        "import importlib, json, os, pkgutil, sys\n"
        "import classifier_host\n"
        "before = dict(os.environ)\n"
        "names = [m.name for m in pkgutil.walk_packages(classifier_host.__path__, 'classifier_host.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
        "print(json.dumps([len(names), changed, 'sagemaker' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    count, changed, sdk_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert count > 30 and changed == [] and not sdk_loaded, done.stdout + done.stderr
