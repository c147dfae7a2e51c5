"""The runtimes a model can be served on, by name, and the library each needs.

metadata.json records each runtime's scores under these names; SERVING_RUNTIME takes them. Standard
library only: the artifact, the explanations, the selection and the host name runtimes without running one.
"""

from __future__ import annotations

import importlib.util

TORCH, ONNX, ONNX_INT8 = "torch", "onnx", "onnx-int8"
NAMES = (TORCH, ONNX, ONNX_INT8)
LIBRARY = {TORCH: "torch", ONNX: "onnxruntime", ONNX_INT8: "onnxruntime"}


def installed(name: str) -> bool:
    """Whether this image has the library runtime `name` needs (serve-cpu has no torch)."""
    return importlib.util.find_spec(LIBRARY[name]) is not None
