"""Stopped and killed training containers, started again with the same checkpoint folder.

One job of 3 epochs, run three times with one checkpoint folder (a file:// channel in local mode):
  1. `docker stop` (SIGTERM, what a spot interruption or StopTrainingJob sends) in the middle of
     epoch 2: the trainer saves a checkpoint at the exact step and exits by itself;
  2. started again, it resumes at that step; `docker kill` (SIGKILL) in the middle of epoch 3;
  3. a corrupted "newer" checkpoint is dropped in the folder first; started again, it is skipped with
     a warning, the job resumes after epoch 2 and finishes.
The three logs together must hold each epoch's metric line exactly once.
"""

import json
import re
import subprocess
import tarfile
import threading

import pytest

from classifier.contract import metrics
from classifier.training import checkpoint

from .jobs import ROOT, SMALL_HP, train_command

EPOCHS = 3
# Batches of 8: 25 short steps per epoch, room to act in the middle of one after seeing step 2.
HPS = {
    **SMALL_HP,
    "epochs": str(EPOCHS),
    "batch-size": "8",
    "log-interval": "1",
    "debugger": "false",
    "profiling": "false",
}
STEPS = 25  # 200 sample training images / 8
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_job(data, output, image, folder, trigger: str | None = None, action: list[str] | None = None):
    """The launcher with --checkpoint-dir; when a log line contains `trigger`, run `action` + the
    container's name. Returns (exit code, log, container name)."""
    args = train_command(data, output, image, HPS, "--checkpoint-dir", str(folder))
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    lines, container, acting = [], None, None
    try:
        for line in process.stdout:
            line = ANSI.sub("", line)
            lines.append(line)
            found = re.match(r"(\S+-algo-1-\S+)\s+\|", line)
            container = container or (found and found[1])
            if trigger and acting is None and trigger in line:
                # In the background: `docker stop` returns only once the container has exited.
                acting = subprocess.Popen([*action, container], stdout=subprocess.DEVNULL)
        code = process.wait()
    finally:
        watchdog.cancel()
    if acting:
        acting.wait(timeout=120)
    return code, "".join(lines), container


def exit_code(log: str, container: str) -> int:
    """The container's exit code as docker compose reports it (train_local removes the container)."""
    found = re.search(rf"^{re.escape(container)} exited with code (\d+)$", log, re.M)
    assert found, log[-5000:]
    return int(found[1])


@pytest.fixture(scope="module")
def interrupted_runs(sample_data, train_image, tmp_path_factory):
    """The three runs: [(exit code, log, container exit code)], the checkpoint folder, the output folder."""
    tmp = tmp_path_factory.mktemp("resume")
    folder, output = tmp / "checkpoints", tmp / "output"
    runs, containers = [], []
    try:
        code, log, name = run_job(
            sample_data,
            output,
            train_image,
            folder,
            f"epoch 2/{EPOCHS} step 2/{STEPS}",
            ["docker", "stop", "--time", "60"],
        )
        containers.append(name)
        runs.append((code, log, exit_code(log, name), [p for p, _ in checkpoint.candidates(folder)]))

        code, log, name = run_job(
            sample_data, output, train_image, folder, f"epoch 3/{EPOCHS} step 2/{STEPS}", ["docker", "kill"]
        )
        containers.append(name)
        runs.append((code, log, exit_code(log, name), [p for p, _ in checkpoint.candidates(folder)]))

        # A newer checkpoint (5 steps into epoch 3) cut short, as an interrupted copy would leave it.
        _, newest = checkpoint.candidates(folder)[0]
        payload = newest.read_bytes()
        damaged = folder / checkpoint.file_name(checkpoint.Position(2, 5), checkpoint._digest(payload))
        damaged.write_bytes(payload[: len(payload) // 3])

        code, log, name = run_job(sample_data, output, train_image, folder)
        containers.append(name)
        runs.append((code, log, exit_code(log, name), [p for p, _ in checkpoint.candidates(folder)]))
        for number, run in enumerate(runs, 1):  # kept for reading when a test fails
            (tmp / f"run{number}.log").write_text(run[1])
        yield runs, damaged, output
    finally:
        subprocess.run(["docker", "rm", "-f", *filter(None, containers)], capture_output=True)


def stopped_at(log: str) -> int:
    found = re.search(rf"stopped by SIGTERM at epoch 2 step (\d+)/{STEPS}", log)
    assert found, log[-5000:]
    return int(found[1])


def test_sigterm_saves_the_exact_step_and_exits_by_itself(interrupted_runs):
    (code, log, container_code, positions), *_ = interrupted_runs[0]
    step = stopped_at(log)
    assert 2 <= step < STEPS, "SIGTERM must stop the job in the middle of epoch 2"
    assert "received SIGTERM" in log
    # The trainer exits with 143; sagemaker-training's `train` reports that as its own failure code (1).
    # Not 137: docker did not have to SIGKILL it at the end of the grace period.
    assert code != 0 and container_code == 1, container_code
    assert "[init] SIGTERM forwarded to" in log
    assert positions[0] == checkpoint.Position(1, step)
    assert metrics.parse_metrics(log)["epoch"] == [1.0]


def test_resume_continues_at_the_next_step_and_sigkill_loses_only_the_epoch_in_progress(interrupted_runs):
    runs, _, _ = interrupted_runs
    step = stopped_at(runs[0][1])
    code, log, container_code, positions = runs[1]
    assert f"1 of {EPOCHS} epochs done, then {step} steps into epoch 2" in log, log[-5000:]
    assert f"epoch 2/{EPOCHS} step {step + 1}/{STEPS}" in log
    assert f"epoch 2/{EPOCHS} step {step}/{STEPS} " not in log  # no step trained twice
    assert container_code == 137 and code != 0
    assert metrics.parse_metrics(log)["epoch"] == [2.0], "the kill must land in the middle of epoch 3"
    assert positions[0] == checkpoint.Position(2, 0)


def test_corrupted_checkpoint_is_skipped_and_every_epoch_appears_once(interrupted_runs):
    runs, damaged, output = interrupted_runs
    code, log, container_code, positions = runs[2]
    assert code == 0 and container_code == 0, log[-5000:]
    assert "WARNING" in log and f"skipping checkpoint {checkpoint_path(damaged)}" in log
    assert "checksum" in log
    assert f"2 of {EPOCHS} epochs done, then 0 steps into epoch 3" in log
    epochs = [e for _, run_log, _, _ in runs for e in metrics.parse_metrics(run_log)["epoch"]]
    assert epochs == [float(e) for e in range(1, EPOCHS + 1)]
    with tarfile.open(output / "model.tar.gz") as tar:
        history = json.load(tar.extractfile("metadata.json"))["metrics"]["history"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert positions[0] == checkpoint.Position(EPOCHS, 0)


def checkpoint_path(host_file) -> str:
    """The damaged file as the container sees it (the checkpoint channel's mount point)."""
    return f"/opt/ml/input/data/checkpoints/{host_file.name}"
