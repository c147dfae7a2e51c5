"""The names of what a training job writes and others read: the model artifact's files, the profile
folder's files, the debugger's collections. Defined here once; the trainer writes them, the server and
the host read them by these names.
"""

from __future__ import annotations

# model.tar.gz (classifier/model/artifact.py writes and reads it)
WEIGHTS_FILE = "model.pt"
METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
CHECK_IMAGES_FILE = "check_images.npy"
CHECK_PROBABILITIES_FILE = "check_probabilities.npy"
EVALUATION_FILE = "evaluation.json"

# <output data>/profile/ (classifier/training/profiling.py), in output.tar.gz
PROFILE_DIR = "profile"
SYSTEM_FILE, TRACE_FILE, OPERATORS_FILE, EPOCHS_FILE = "system.jsonl", "trace.json", "operators.json", "epochs.jsonl"

# smdebug collections the hook saves (classifier/debugging/hook.py) and the rules read
LOSSES, WEIGHTS, GRADIENTS, RELU_INPUT = "losses", "weights", "gradients", "relu_input"
COLLECTIONS = (LOSSES, WEIGHTS, GRADIENTS, RELU_INPUT)
