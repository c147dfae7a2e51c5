"""Which runtime serves: SERVING_RUNTIME=auto | torch | onnx | onnx-int8, the accuracy gate, the start-up check.

`auto` on a GPU serves torch with AMP. On a CPU it serves the fastest runtime (int8, then ONNX fp32,
then torch: the README's table) that is in the artifact, is installed in this image (serve-cpu has no
torch), passes the gate on the trainer's test-split scores (top-1 agreement with torch fp32 and test
accuracy within a drop of torch's), and passes the start-up check here: the training instance's CPU is
not the endpoint's (int8 on x86 without VNNI can saturate), so an int8 candidate re-runs the artifact's
check set on this CPU and must agree with the stored fp32 answers (float runtimes need no re-check). A
runtime named explicitly is served even if it misses the gate (a warning says so), but it must be in
the artifact and the image.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.model import artifact, runtimes
from classifier.model.runtimes import ONNX, ONNX_INT8, TORCH

log = logging.getLogger(__name__)

AUTO = "auto"
CHOICES = (AUTO, *runtimes.NAMES)
CPU_ORDER = (ONNX_INT8, ONNX, TORCH)  # fastest first on a CPU (benchmarks/serving.py)
# The start-up check guards integer arithmetic, which differs between CPUs (u8s8 saturation without
# VNNI); ONNX fp32 computes torch's function in float on any CPU, as the trainer measured it.
QUANTIZED = (ONNX_INT8,)


class SelectionError(ValueError):
    """The runtime asked for cannot be served from this artifact in this image; the message says why."""


@dataclass(frozen=True)
class Gate:
    """A runtime other than torch fp32 serves only if it is this close to torch fp32."""

    min_agreement: float = 0.99  # top-1 agreement with torch fp32, test split and start-up check
    max_accuracy_drop: float = 0.005  # test accuracy at most this far below torch fp32's (0.5 points)

    def verdict(self, scores: dict, reference: dict) -> str | None:
        """None when `scores` pass against the torch fp32 `reference`; else why not."""
        agreement, accuracy, base = scores.get("agreement"), scores.get("test_acc"), reference.get("test_acc")
        if agreement is None or accuracy is None or base is None:
            return "the artifact records no test-split scores for it"
        if agreement < self.min_agreement:
            return f"top-1 agreement with torch fp32 {agreement:.4f} < {self.min_agreement:g}"
        if accuracy < base - self.max_accuracy_drop:
            return (
                f"test accuracy {accuracy:.4f} is more than {self.max_accuracy_drop * 100:g} points below "
                f"torch fp32's {base:.4f}"
            )
        return None


@dataclass(frozen=True)
class RuntimeRequest:
    """The serving settings that pick the runtime (server.py reads them from the environment)."""

    name: str = AUTO
    gate: Gate = field(default_factory=Gate)
    threads: int | None = None  # intra-op threads for the start-up check (the worker sets its own)
    gpu: bool = False  # a GPU is visible: auto serves torch with AMP


@dataclass
class Choice:
    runtime: object  # runtimes.TorchRuntime | runtimes.OnnxRuntime
    reason: str


def check(runtime, check_set: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(top-1 agreement, largest probability difference) of `runtime` with the stored torch fp32 answers.

    Runs in a child process: the server's master forks its workers next and must not have loaded
    onnxruntime (a process forked from one that has aborts at exit)."""
    images, reference = check_set

    def measure():
        probabilities = runtimes.probabilities_in_batches(runtime, images, 32)
        agreement = float((probabilities.argmax(1) == reference.argmax(1)).mean())
        return agreement, float(np.abs(probabilities - reference).max())

    return tuple(in_child_process(measure))


def in_child_process(function):
    """function()'s JSON-able result, computed in a forked child that leaves by os._exit (no interpreter
    teardown: none of what the child loaded, onnxruntime included, is torn down or left in this process)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            result = {"value": function()}
        except BaseException as err:  # reported to the parent, which raises it
            result = {"error": f"{type(err).__name__}: {err}"}
        with os.fdopen(write, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        text = answer.read()
    _, status = os.waitpid(pid, 0)
    try:
        result = json.loads(text)
    except json.JSONDecodeError:
        raise RuntimeError(f"the start-up check's process died (wait status {status})") from None
    if "error" in result:
        raise RuntimeError(f"the start-up check failed: {result['error']}")
    return result["value"]


def build(model_dir: Path, name: str, metadata: dict, threads: int | None):
    if name == TORCH:
        import torch

        # The server's master builds the model, then forks the workers: it must run no OpenMP parallel
        # region first (a worker inheriting a used thread pool can hang). Workers set their own count.
        torch.set_num_threads(1)
        network, _ = artifact.load(model_dir)
        return runtimes.TorchRuntime(network, metadata["preprocessing"], metadata.get("explanation"))
    return runtimes.OnnxRuntime(
        name, model_dir / artifact.RUNTIME_FILES[name], metadata["preprocessing"], threads, metadata.get("explanation")
    )


def _absent(name: str, metadata: dict, exported: dict) -> str | None:
    """Why runtime `name` cannot run here (not in the artifact, or its library not in this image), or None."""
    if name not in exported:
        skipped = metadata.get("export", {}).get("skipped", {}).get(name)
        why = (
            f" (the trainer skipped it: {skipped})"
            if skipped
            else (" (trained with export off, or before exports existed)" if name != TORCH else "")
        )
        return f"the artifact has no {name} export{why}; it has {', '.join(exported) or 'none'}"
    if not runtimes.installed(name):
        fix = (
            "serve-cpu has no torch: serve this artifact with the serve image"
            if name == TORCH
            else "an image built before ONNX serving: rebuild it with make build"
        )
        return f"the {name} runtime needs the {runtimes.LIBRARY[name]} package, which this image does not have ({fix})"
    return None


def choose(model_dir: Path, metadata: dict, request: RuntimeRequest) -> Choice:
    """The runtime to serve and why, or SelectionError naming what the artifact and the image lack."""
    if request.name not in CHOICES:
        raise SelectionError(f"SERVING_RUNTIME must be one of {', '.join(CHOICES)}, got {request.name!r}")
    exported = artifact.exported(model_dir, metadata)
    if request.name != AUTO:
        problem = _absent(request.name, metadata, exported)
        if problem:
            raise SelectionError(f"SERVING_RUNTIME={request.name}: {problem}")
        return _checked(model_dir, metadata, [request.name], request, exported, notes=[], forced=True)
    if request.gpu and _absent(TORCH, metadata, exported) is None:
        return Choice(build(model_dir, TORCH, metadata, request.threads), "auto on a GPU: torch with AMP")
    candidates, notes = plan(model_dir, metadata, request.gate)
    if not candidates:
        raise SelectionError("SERVING_RUNTIME=auto: no runtime can serve this artifact here: " + "; ".join(notes))
    return _checked(model_dir, metadata, candidates, request, exported, notes, forced=False)


def plan(model_dir: Path, metadata: dict, gate: Gate) -> tuple[list[str], list[str]]:
    """The runtimes `auto` tries on a CPU, fastest first (in the artifact, in this image, passing the
    gate), and why each other one is out. The trainer logs the first: what an endpoint will serve."""
    exported = artifact.exported(model_dir, metadata)
    candidates, notes = [], []
    for name in CPU_ORDER:
        problem = _absent(name, metadata, exported)
        if problem is None and name != TORCH:
            problem = gate.verdict(exported[name], exported.get(TORCH, {}))
            problem = problem and f"it misses the gate: {problem}"
        if problem:
            notes.append(f"not {name}: {problem}")
        else:
            candidates.append(name)
    return candidates, notes


def _checked(
    model_dir: Path,
    metadata: dict,
    candidates: list[str],
    request: RuntimeRequest,
    exported: dict,
    notes: list[str],
    forced: bool,
) -> Choice:
    """The first candidate that passes the start-up check on this CPU (torch fp32 is the reference)."""
    for name in candidates:
        runtime = build(model_dir, name, metadata, request.threads)
        scores = exported[name]
        summary = (
            f"{name}: test accuracy {_score(scores, 'test_acc')}, top-1 agreement with torch fp32 "
            f"{_score(scores, 'agreement')} on the test split"
        )
        if name == TORCH:
            return Choice(runtime, "; ".join([summary + " (the reference)", *notes]))
        if name not in QUANTIZED:
            return Choice(runtime, "; ".join([summary + " (float: no start-up check needed)", *notes]))
        check_set = artifact.load_check_set(model_dir)  # read only when a quantized runtime needs it
        if check_set is None:
            return Choice(runtime, "; ".join([summary + ", no check set in the artifact to re-check it", *notes]))
        try:
            agreement, error = check(runtime, check_set)
        except RuntimeError as err:  # e.g. a file ONNX Runtime cannot load
            if forced:
                raise SelectionError(f"SERVING_RUNTIME={name}: {err}") from None
            agreement, measured = 0.0, str(err)
        else:
            measured = (
                f"{agreement * len(check_set[0]):.0f}/{len(check_set[0])} check images agree on this CPU "
                f"(largest probability difference {error:.4f})"
            )
        if agreement >= request.gate.min_agreement:
            return Choice(runtime, "; ".join([f"{summary}; {measured}", *notes]))
        if forced:
            log.warning("SERVING_RUNTIME=%s fails the start-up check (%s): serving it as asked", name, measured)
            return Choice(
                runtime,
                f"{summary}; {measured}, below {request.gate.min_agreement:g}: served because SERVING_RUNTIME names it",
            )
        log.warning("%s fails the start-up check on this CPU: %s; trying the next runtime", name, measured)
        notes.append(
            f"not {name}: it fails the start-up check on this CPU: {measured}, below {request.gate.min_agreement:g}"
        )
    raise SelectionError("SERVING_RUNTIME=auto: no runtime can serve this artifact here: " + "; ".join(notes))


def _score(scores: dict, key: str) -> str:
    value = scores.get(key)
    return "not recorded" if value is None else f"{value:.4f}"
