"""Where SageMaker puts things inside a container (/opt/ml, or SAGEMAKER_BASE_DIR in tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SageMakerPaths:
    base: Path

    @classmethod
    def from_env(cls) -> SageMakerPaths:
        return cls(Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")))

    @property
    def hyperparameters(self) -> Path:
        return self.base / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.base / "input" / "config" / "resourceconfig.json"

    @property
    def input_data(self) -> Path:
        return self.base / "input" / "data"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        """Files here come back in output.tar.gz."""
        return self.base / "output" / "data"

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"

    def channels(self) -> dict[str, Path]:
        """Input channels by name, as SageMaker mounts them (one folder each)."""
        if not self.input_data.is_dir():
            return {}
        return {p.name: p for p in sorted(self.input_data.iterdir()) if p.is_dir()}
