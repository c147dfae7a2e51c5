"""The work after training, on the artifact the trainer has written (model.pt and metadata.json): the ONNX
exports each scored on the test split, the runtime a CPU endpoint's `auto` will serve, and evaluation.json.

Each is computed once, from the model as a server loads it. None of it fails the job: the torch model is
already complete and servable, and a step that breaks costs only what it would have added.
"""

from __future__ import annotations

import logging

from torch import nn

from classifier.contract import metrics
from classifier.contract.paths import SageMakerPaths
from classifier.model import artifact, evaluation, gradcam, runtimes, selection
from classifier.training import data, export

log = logging.getLogger("classifier.training.finalize")


def finalize(hp, paths: SageMakerPaths, train_samples, test_set: data.TensorImages) -> None:
    """Exports (when hp.export), the runtime plan and the test-split evaluation of the written model."""
    try:
        network, metadata = artifact.load(paths.model)  # exactly the model a server loads
    except Exception:
        log.exception("the written model could not be read back: no exports and no evaluation")
        return
    outcome = export_runtimes(hp, paths, network, metadata, train_samples, test_set) if hp.export else None
    try:
        metadata = artifact.load_metadata(paths.model)  # now with the exports' scores, or why they were skipped
        served = served_runtime(paths, metadata)
    except Exception:
        log.exception("planning the served runtime failed: the evaluation uses torch")
        served = runtimes.TORCH
    write_evaluation(paths, network, metadata, test_set, outcome, served)


def export_runtimes(
    hp, paths: SageMakerPaths, network: nn.Module, metadata: dict, train_samples, test_set: data.TensorImages
) -> export.Outcome | None:
    """ONNX exports of `network` (the written model), each scored on the test split, recorded in the artifact."""
    try:
        prep = metadata["preprocessing"]
        calibration = export.calibration_images(train_samples, prep, hp.seed)
        outcome = export.export_and_evaluate(
            network, prep, paths.model, test_set.images, test_set.labels, calibration, metadata.get("explanation")
        )
    except Exception as err:  # e.g. out of memory or disk: the torch model stays, complete and servable
        log.exception("export skipped, the model serves with torch only (%s is complete)", artifact.WEIGHTS_FILE)
        reason = f"{type(err).__name__}: {err}"[: export.REASON_CHARS]
        artifact.drop_exports(
            paths.model, {"enabled": True, "skipped": {runtimes.ONNX: reason, runtimes.ONNX_INT8: reason}}
        )
        return None
    artifact.record_runtimes(
        paths.model, outcome.scores, {"enabled": True, "seconds": round(outcome.seconds, 2), "skipped": outcome.skipped}
    )
    scores = {
        metrics.runtime_metric(name, score): value
        for name, result in outcome.scores.items()
        if name != runtimes.TORCH
        for score, value in result.items()
        if score != "file"
    }
    print(metrics.format_metrics(**scores, export_seconds=outcome.seconds), flush=True)
    log.info(
        "export done in %.1fs: %s",
        outcome.seconds,
        ", ".join(
            [
                f"{name} test_acc {r['test_acc']:.4f} agreement {r['agreement']:.4f}"
                for name, r in outcome.scores.items()
            ]
            + [f"{name} skipped" for name in outcome.skipped]
        ),
    )
    return outcome


def served_runtime(paths: SageMakerPaths, metadata: dict) -> str:
    """What SERVING_RUNTIME=auto will serve on a CPU endpoint (the endpoint re-checks it on its own CPU), logged."""
    gate = selection.Gate()
    candidates, notes = selection.plan(paths.model, metadata, gate)
    log.info(
        "SERVING_RUNTIME=auto will serve %s on a CPU endpoint (it passes the gate: top-1 agreement >= %g, "
        "test accuracy within %g points of torch fp32; the endpoint re-checks it on its own CPU)%s",
        candidates[0],
        gate.min_agreement,
        gate.max_accuracy_drop * 100,
        "".join(f"; {note}" for note in notes),
    )
    return candidates[0]


def explanation_target(network: nn.Module, crop: int) -> dict:
    """metadata.json's "explanation" (gradcam.locate); a model it cannot place is served unexplained, never lost."""
    try:
        target = gradcam.locate(network, crop)
    except Exception as err:
        log.exception("locating the Grad-CAM layer failed: explain=gradcam will answer 400 for this model")
        return {"unsupported": f"locating its Grad-CAM layer failed ({type(err).__name__}: {err})"}
    if "unsupported" in target:
        log.info("explain=gradcam will answer 400 for this model: %s", target["unsupported"])
    else:
        log.info(
            "explain=gradcam: Grad-CAM at %s (%s at crop %d); %s",
            target["layer"],
            "x".join(map(str, target["map"])),
            crop,
            "it equals CAM from the head's weights, which the ONNX exports carry (every image explains)"
            if target["head_weights"]
            else "it needs gradients: only the torch runtime (serve image) explains",
        )
    return target


def write_evaluation(
    paths: SageMakerPaths,
    network: nn.Module,
    metadata: dict,
    test_set: data.TensorImages,
    outcome: export.Outcome | None,
    served: str,
) -> None:
    """evaluation.json in the artifact: the test split through `served` (torch when there are no exports),
    so its numbers are the endpoint's, and the Grad-CAM of its worst mistakes (torch: the reference, equal
    to the ONNX CAM where that exists)."""
    try:
        torch_runtime = runtimes.TorchRuntime(network, metadata["preprocessing"], metadata.get("explanation"))
        if outcome is not None and served in outcome.probabilities:
            runtime, probabilities = served, outcome.probabilities[served]
        else:
            runtime = runtimes.TORCH
            probabilities = runtimes.probabilities_in_batches(torch_runtime, test_set.images.numpy(), export.BATCH)
        sources = [f"{p.parent.name}/{p.name}" for p in test_set.sources] or None
        result = evaluation.evaluate(probabilities, test_set.labels.numpy(), metadata["classes"], sources, runtime)
        evaluation.explain_mistakes(result, torch_runtime, test_set.images.numpy())
        artifact.save_evaluation(paths.model, result)
        log.info(evaluation.summary(result))
    except Exception:  # the model is written and scored; a broken evaluation costs only its page
        log.exception("the test-split evaluation (%s) was not written", artifact.EVALUATION_FILE)
