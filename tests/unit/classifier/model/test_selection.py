"""SERVING_RUNTIME: the gate, the start-up check and the fallbacks, on a real exported artifact."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from classifier.model import artifact, decoding, runtimes, selection
from classifier.model import network as model_lib
from classifier.model.runtimes import ONNX, ONNX_INT8, TORCH
from classifier.model.selection import Gate, RuntimeRequest, SelectionError
from classifier.serving.app import ServingApp
from classifier.serving.handler import ImageClassifierHandler, RequestContext
from classifier.training import export

PREP = decoding.eval_preprocessing(32)
CLASSES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory):
    """A resnet18 artifact as the trainer writes it: model.pt, both ONNX files, scores, check set."""
    torch.manual_seed(0)
    network = model_lib.build("resnet18", len(CLASSES)).eval()
    path = tmp_path_factory.mktemp("exported")
    artifact.save(
        path,
        network.state_dict(),
        classes=CLASSES,
        model_name="resnet18",
        image_size=32,
        preprocessing=PREP,
        hyperparameters={},
        metrics={"test_acc": 0.25},
        export={"enabled": True},
    )
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, len(CLASSES), (48,), generator=generator)
    outcome = export.export_and_evaluate(network, PREP, path, images, labels, images[:16].numpy())
    assert outcome.skipped == {}
    artifact.record_runtimes(path, outcome.scores, {"enabled": True, "skipped": {}})
    return path


@pytest.fixture
def model_dir(exported_model, tmp_path):
    """A copy each test may edit; int8 marked as passing the gate (an untrained net's int8 does not)."""
    path = tmp_path / "model"
    shutil.copytree(exported_model, path)
    set_scores(path, ONNX_INT8, agreement=1.0, test_acc=metadata(path)["runtimes"][TORCH]["test_acc"])
    return path


def metadata(path):
    return json.loads((path / artifact.METADATA_FILE).read_text())


def set_scores(path, runtime, **scores):
    meta = metadata(path)
    meta["runtimes"][runtime].update(scores)
    artifact.record_runtimes(path, meta["runtimes"], meta["export"])


def int8_agreeing_with_its_check_set(path):
    """The check set re-labelled with int8's own answers: int8 passes the start-up check here."""
    images, _ = artifact.load_check_set(path)
    int8 = runtimes.OnnxRuntime(ONNX_INT8, path / artifact.RUNTIME_FILES[ONNX_INT8], PREP)
    artifact.save_check_set(path, images, int8.probabilities(images))


def choose(path, name="auto", **request):
    return selection.choose(path, artifact.load_metadata(path), RuntimeRequest(name, **request))


def test_auto_serves_int8_when_it_passes_the_gate_and_the_check(model_dir):
    int8_agreeing_with_its_check_set(model_dir)
    choice = choose(model_dir)
    assert choice.runtime.name == ONNX_INT8
    assert "32/32 check images agree on this CPU" in choice.reason
    assert not choice.runtime.started  # checked in a child process: the master never loads onnxruntime
    choice.runtime.start(1)
    assert choice.runtime.probabilities(np.zeros((3, 3, 32, 32), np.uint8)).shape == (3, 4)


def test_workers_start_their_session_without_reading_the_file(model_dir):
    """The master (root) reads the file; a worker (an unprivileged user who may not read /opt/ml/model,
    as in SageMaker local mode) opens its session from those bytes."""
    choice = choose(model_dir, ONNX)
    (model_dir / artifact.RUNTIME_FILES[ONNX]).unlink()
    choice.runtime.start(1)
    assert choice.runtime.probabilities(np.zeros((2, 3, 32, 32), np.uint8)).shape == (2, 4)


def test_a_runtime_that_cannot_start_in_the_worker_fails_ping_with_the_reason(model_dir):
    handler = ImageClassifierHandler(runtime=RuntimeRequest(ONNX))
    app = ServingApp(handler, handler.model_fn(model_dir))
    app.model.runtime.model = b"not an onnx file"  # what the worker would find if the bytes were damaged
    app.start_worker(1)
    statuses = []
    body = json.loads(
        b"".join(app({"PATH_INFO": "/ping", "REQUEST_METHOD": "GET"}, lambda status, headers: statuses.append(status)))
    )
    assert statuses == ["503 Service Unavailable"]
    assert body["status"].startswith("starting the onnx runtime failed: ") and body["runtime"] == ONNX


def test_auto_skips_int8_that_misses_the_gate(model_dir):
    set_scores(model_dir, ONNX_INT8, agreement=0.95)
    choice = choose(model_dir)
    assert choice.runtime.name == ONNX and "(float: no start-up check needed)" in choice.reason
    assert "not onnx-int8: it misses the gate: top-1 agreement with torch fp32 0.9500 < 0.99" in choice.reason
    # The thresholds are settings: a looser gate lets it through.
    int8_agreeing_with_its_check_set(model_dir)
    assert choose(model_dir, gate=Gate(min_agreement=0.9)).runtime.name == ONNX_INT8


def test_auto_skips_int8_whose_accuracy_drops(model_dir):
    base = metadata(model_dir)["runtimes"][TORCH]["test_acc"]
    set_scores(model_dir, ONNX_INT8, test_acc=base - 0.01)
    assert "more than 0.5 points below" in choose(model_dir).reason
    assert choose(model_dir, gate=Gate(max_accuracy_drop=0.02)).runtime.name == ONNX_INT8


class OtherNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3), nn.Linear(8, len(CLASSES))

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_auto_falls_back_when_int8_computes_differently_on_this_cpu(model_dir, tmp_path):
    """An int8 file whose answers differ from the stored fp32 ones, as on a CPU where int8 saturates:
    the start-up check catches it and the next runtime serves."""
    torch.manual_seed(7)
    other = tmp_path / "other"
    other.mkdir()
    export.export_fp32(OtherNet().eval(), 32, other / "model.onnx")
    export.quantize_int8(
        other / "model.onnx", model_dir / artifact.RUNTIME_FILES[ONNX_INT8], np.zeros((4, 3, 32, 32), np.uint8), PREP
    )
    choice = choose(model_dir)
    assert choice.runtime.name == ONNX
    assert "not onnx-int8: it fails the start-up check on this CPU" in choice.reason
    # Asked for by name, it serves anyway, and says why.
    forced = choose(model_dir, ONNX_INT8)
    assert forced.runtime.name == ONNX_INT8 and "served because SERVING_RUNTIME names it" in forced.reason


def test_an_int8_file_that_does_not_load_falls_back(model_dir):
    (model_dir / artifact.RUNTIME_FILES[ONNX_INT8]).write_bytes(b"truncated")
    choice = choose(model_dir)
    assert choice.runtime.name == ONNX and "not onnx-int8: it fails the start-up check" in choice.reason
    assert "the start-up check failed: " in choice.reason
    with pytest.raises(SelectionError, match="SERVING_RUNTIME=onnx-int8: the start-up check failed"):
        choose(model_dir, ONNX_INT8)


def test_a_runtime_not_in_the_artifact_is_a_start_up_error(model_dir):
    (model_dir / artifact.RUNTIME_FILES[ONNX_INT8]).unlink()
    with pytest.raises(SelectionError, match="SERVING_RUNTIME=onnx-int8: the artifact has no onnx-int8 export"):
        choose(model_dir, ONNX_INT8)
    assert choose(model_dir).runtime.name == ONNX  # auto takes what is there


def test_a_skipped_export_names_the_trainers_reason(model_dir):
    artifact.drop_exports(model_dir, {"enabled": True, "skipped": {ONNX: "Unsupported op foo", ONNX_INT8: "x"}})
    with pytest.raises(SelectionError, match="the trainer skipped it: Unsupported op foo"):
        choose(model_dir, ONNX)
    assert choose(model_dir).runtime.name == TORCH


def test_an_unknown_runtime_is_refused(model_dir):
    with pytest.raises(SelectionError, match="must be one of auto, torch, onnx, onnx-int8"):
        choose(model_dir, "tensorrt")


def test_auto_on_a_gpu_serves_torch(model_dir):
    choice = choose(model_dir, gpu=True)
    assert choice.runtime.name == TORCH and "GPU" in choice.reason


def test_version_1_artifacts_serve_with_torch(model_dir):
    meta = metadata(model_dir)
    for key in ("runtimes", "export"):
        del meta[key]
    meta["format_version"] = 1
    (model_dir / artifact.METADATA_FILE).write_text(json.dumps(meta))
    for name in ("model.onnx", "model.int8.onnx", artifact.CHECK_IMAGES_FILE, artifact.CHECK_PROBABILITIES_FILE):
        (model_dir / name).unlink()
    assert choose(model_dir).runtime.name == TORCH


def test_the_check_set_is_the_images_fp32_is_surest_of():
    reference = np.array([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.1, 0.2, 0.7]])
    assert export.check_indices(reference, 2).tolist() == [1, 3]


# The serve-cpu image has no torch: the whole serving path must run without it. Here torch is made
# unimportable in a fresh interpreter, which then selects, decodes and answers from the ONNX files.
NO_TORCH = textwrap.dedent("""
    import io, json, sys

    # None in sys.modules: `import torch` fails and find_spec("torch") is None, as where it is absent.
    sys.modules["torch"] = sys.modules["torchvision"] = None
    from PIL import Image
    from classifier.model import runtimes
    from classifier.serving import app, server
    from classifier.serving.handler import ImageClassifierHandler, RequestContext
    from classifier.model.selection import RuntimeRequest, SelectionError

    assert not runtimes.installed("torch")
    name = sys.argv[2]
    handler = ImageClassifierHandler(runtime=RuntimeRequest(name))
    try:
        model = handler.model_fn(sys.argv[1]).start(1)
    except SelectionError as err:
        print(json.dumps({"error": str(err)}))
        sys.exit(0)
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(buffer, "JPEG")
    inputs = handler.input_fn(buffer.getvalue(), "image/jpeg", RequestContext("top_k=4"))
    answer = json.loads(handler.output_fn(handler.predict_fn(inputs, model), None)[0])
    print(json.dumps({"runtime": model.runtime.name, "answer": answer,
                      "torch_loaded": any(m.split(".")[0] == "torch" and sys.modules[m] for m in sys.modules)}))
""")


def run_without_torch(model_dir, name="auto"):
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(model_dir), name], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_torch_the_onnx_runtimes_serve_the_same_answers(model_dir):
    int8_agreeing_with_its_check_set(model_dir)
    slim = run_without_torch(model_dir, ONNX)
    assert slim["runtime"] == ONNX and slim["torch_loaded"] is False
    handler = ImageClassifierHandler(runtime=RuntimeRequest(TORCH))
    served = handler.model_fn(model_dir).start(1)
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(buffer, "JPEG")
    inputs = handler.input_fn(buffer.getvalue(), "image/jpeg", RequestContext("top_k=4"))
    full = handler.predict_fn(inputs, served)["predictions"]
    assert [r["index"] for r in slim["answer"]["predictions"]] == [r["index"] for r in full]
    for got, want in zip(slim["answer"]["predictions"], full, strict=True):
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-4)
    assert run_without_torch(model_dir)["runtime"] == ONNX_INT8


def test_without_torch_a_torch_only_artifact_is_a_clear_error(model_dir):
    artifact.drop_exports(model_dir, {"enabled": False})
    error = run_without_torch(model_dir)["error"]
    assert "the torch runtime needs the torch package, which this image does not have" in error
    assert "serve this artifact with the serve image" in error
