"""The runtimes a model can run on: each turns a uint8 (N,3,H,W) batch into probabilities (N, classes).

The trainer evaluates every runtime through these classes and the server runs them, so the accuracy
and agreement recorded in metadata.json are those of the code that serves. A float batch is taken
as already normalised (the server accepts preprocessed tensors), as in `inference.logits`.

Importing this module imports neither torch nor onnxruntime: the slim serving image (serve-cpu) has
no torch, and a torch-only server needs no onnxruntime. Each runtime imports its library when built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The names live apart (runtime_names) so that the artifact and the explanations can name runtimes
# without importing the runtimes, which import them: one direction, no cycle.
from classifier.model.runtime_names import LIBRARY, NAMES, ONNX, ONNX_INT8, TORCH, installed

__all__ = [
    "LIBRARY",
    "NAMES",
    "ONNX",
    "ONNX_INT8",
    "TORCH",
    "OnnxRuntime",
    "TorchRuntime",
    "installed",
    "normalize",
    "probabilities_in_batches",
    "softmax",
]


class TorchRuntime:
    """The PyTorch model (fp32 on CPU; AMP on a GPU, see `inference.device_settings`)."""

    name = TORCH

    def __init__(self, network, preprocessing: dict, explanation: dict | None = None):
        # Serving and scoring never train: with no parameter asking for gradients, Grad-CAM's pass records
        # only the layers after its map (gradcam.GradCam asks for the map's gradient itself).
        self.network = network.eval().requires_grad_(False)
        self.preprocessing = preprocessing
        self.explanation = explanation  # metadata.json's "explanation"; located on first use when absent
        self._gradcam = None

    def start(self, threads: int) -> None:
        """In a server worker, after the fork: CUDA must not be initialised before it."""
        import torch

        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            self.network.to("cuda")

    def describe(self) -> str:
        import torch

        device = next(self.network.parameters()).device
        return f"torch on {device} ({torch.get_num_threads()} threads)"

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        import torch

        from classifier.model import forward

        return forward.probabilities(self.network, torch.as_tensor(batch), self.preprocessing).numpy()

    def explain(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, raw Grad-CAM maps (N, h, w) of each image's top class): a pass with gradients."""
        import torch

        from classifier.model import explanations, gradcam

        if self._gradcam is None:
            target = self.explanation or gradcam.locate(self.network, self.preprocessing["crop"])
            if "unsupported" in target:
                raise explanations.ExplainUnavailable(
                    f"explain={explanations.METHOD} is not available for this model: {target['unsupported']}"
                )
            self.explanation = target
            self._gradcam = gradcam.GradCam(self.network, target["layer"])
        logits, maps = self._gradcam(torch.as_tensor(batch), self.preprocessing)
        # torch's softmax, as `probabilities` computes it: explaining changes no answer.
        return torch.softmax(logits, dim=1).cpu().numpy(), maps.cpu().numpy()


class OnnxRuntime:
    """An ONNX file (fp32 or int8 QDQ) on ONNX Runtime's CPU provider; the graph maps normalised images
    to logits, so normalisation and softmax run here in numpy, as torch does them, in float32.

    The file is read when the runtime is built, the session opened on first use (or by `start`): a
    server's master builds runtimes but must never load onnxruntime (a process forked from one that has
    aborts at exit, "terminate called ... No such process"), and its workers open their own sessions.
    """

    def __init__(
        self, name: str, path: Path, preprocessing: dict, threads: int | None = None, explanation: dict | None = None
    ):
        self.name = name
        self.path = Path(path)
        self.preprocessing = preprocessing
        self.threads = threads
        self.explanation = explanation
        # The bytes, not the path: the workers run as an unprivileged user who may not read /opt/ml/model's
        # files (SageMaker local mode unpacks them for root only).
        self.model = self.path.read_bytes()
        self._session = None

    def start(self, threads: int | None) -> None:
        """Open a new session with `threads` intra-op threads (None: ONNX Runtime's default, one per core)."""
        import onnxruntime  # imported on use: the server's torch runtime does not need it

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.threads = threads
        self._session = onnxruntime.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])
        self.input_name = self._session.get_inputs()[0].name
        # Ask for the logits by name: an export with explanations has a second output (the CAM), which
        # `probabilities` does not need.
        self.output_names = [output.name for output in self._session.get_outputs()]

    @property
    def started(self) -> bool:
        return self._session is not None

    @property
    def session(self):
        if self._session is None:
            self.start(self.threads)
        return self._session

    def describe(self) -> str:
        return f"ONNX Runtime CPU, {self.path.name} ({self.threads or 'default'} threads)"

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return softmax(self._run(batch)[0])

    def explain(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, CAM maps (N, h, w) of each image's top class): the export's second output."""
        from classifier.model import explanations

        self.session  # noqa: B018 (opens it on first use, which sets output_names)
        if explanations.CAM_OUTPUT not in self.output_names:
            raise explanations.ExplainUnavailable(
                explanations.problem(self.name, {"explanation": self.explanation})
                or (
                    f"explain={explanations.METHOD}: {self.path.name} has no {explanations.CAM_OUTPUT} output "
                    "(its export with it failed, see the training log): "
                    "serve the model on the serve image with SERVING_RUNTIME=torch"
                )
            )
        logits, maps = self._run(batch, [self.output_names[0], explanations.CAM_OUTPUT])
        return softmax(logits), maps

    def _run(self, batch: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
        """The named outputs (default: the logits) for a uint8 or normalised float batch."""
        batch = np.asarray(batch)
        if batch.dtype == np.uint8:
            batch = normalize(batch, self.preprocessing)
        session = self.session  # opens it on first use, which sets input_name and output_names
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return session.run(outputs or self.output_names[:1], feed)


def normalize(batch: np.ndarray, preprocessing: dict) -> np.ndarray:
    """uint8 (N,3,H,W) -> float32 normalised: `inference.normalize`'s arithmetic, in numpy."""
    mean = np.asarray(preprocessing["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocessing["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return (batch.astype(np.float32) / 255 - mean) / std


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def probabilities_in_batches(runtime, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """A whole split through `runtime`, `batch_size` images at a time (bounded memory)."""
    return np.concatenate(
        [runtime.probabilities(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )
