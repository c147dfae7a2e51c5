"""Serverless endpoints: the ServerlessConfig, what the container is told, and what serverless inference
does not support, refused before any call (AWS's limits: 1-6 GB of memory in 1 GB steps, 1-200 concurrent
invocations, 4 MB requests and answers, 60 s per request, CPU only, no VPC, no network isolation, no data
capture, no asynchronous inference, no autoscaling of instances)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..settings import SettingsError

# What images/serving.image_role is asked about for a serverless endpoint: a CPU "instance".
SERVERLESS_INSTANCE = "serverless"
MEMORY_MB = (1024, 6144)
MAX_CONCURRENCY = (1, 200)
DEFAULT = "3072:5"
# Serverless inference takes requests and answers of at most 4 MB, and its container is small: one worker
# process (the container's default is also one, said explicitly so a changed default cannot break it).
PAYLOAD_MB = 4


def serverless_environment() -> dict[str, str]:
    return {"SERVING_MAX_PAYLOAD_MB": str(PAYLOAD_MB), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}


@dataclass(frozen=True)
class Serverless:
    memory_mb: int = 3072
    max_concurrency: int = 5
    provisioned: int | None = None  # provisioned concurrency: that many containers kept warm (billed)

    @classmethod
    def parse(cls, text: str, provisioned: int | None = None) -> Serverless:
        """MEMORY_MB[:MAX_CONCURRENCY] (deploy.py --serverless); SettingsError naming the limit broken."""
        match = re.fullmatch(r"(\d+)(?::(\d+))?", text.strip())
        if not match:
            raise SettingsError(f"--serverless {text!r}: expected MEMORY_MB[:MAX_CONCURRENCY], e.g. {DEFAULT}")
        memory, concurrency = int(match[1]), int(match[2] or cls.max_concurrency)
        if not MEMORY_MB[0] <= memory <= MEMORY_MB[1] or memory % 1024:
            raise SettingsError(
                f"--serverless {text!r}: memory {memory} MB must be {MEMORY_MB[0]}-{MEMORY_MB[1]} in 1024 MB steps"
            )
        if not MAX_CONCURRENCY[0] <= concurrency <= MAX_CONCURRENCY[1]:
            raise SettingsError(
                f"--serverless {text!r}: max concurrency {concurrency} must be "
                f"{MAX_CONCURRENCY[0]}-{MAX_CONCURRENCY[1]}"
            )
        if provisioned is not None and not 1 <= provisioned <= concurrency:
            raise SettingsError(
                f"--provisioned-concurrency {provisioned}: must be 1 to the max concurrency ({concurrency})"
            )
        return cls(memory, concurrency, provisioned)

    def describe(self) -> str:
        warm = f", {self.provisioned} provisioned" if self.provisioned else ""
        return f"serverless {self.memory_mb} MB, up to {self.max_concurrency} concurrent{warm}"

    def config(self) -> dict:
        """The ProductionVariantServerlessConfig, as the service names its fields."""
        return {
            "MemorySizeInMB": self.memory_mb,
            "MaxConcurrency": self.max_concurrency,
            **({"ProvisionedConcurrency": self.provisioned} if self.provisioned else {}),
        }

    def check(self, request, cfg) -> None:
        """SettingsError naming every option of `request` (a CloudDeployment) or setting of `cfg` serverless
        inference does not support."""
        from ..images import serving

        refused = []
        if request.image and "serve-cpu" not in request.image:
            refused.append(f"--image {request.image}: serverless runs CPU only, give the serve-cpu image")
        if request.instance_type and serving.is_gpu(request.instance_type):
            refused.append(f"--instance-type {request.instance_type}: serverless has no GPU (and no instances)")
        if request.instance_count not in (None, 1):
            refused.append("--instance-count: serverless has no instances (its --serverless concurrency scales)")
        if cfg.vpc_config:
            refused.append("SUBNETS / SECURITY_GROUP_IDS: serverless endpoints cannot run in a VPC")
        if request.network_isolation:
            refused.append("--network-isolation: not supported by serverless endpoints")
        if request.data_capture:
            refused.append("--data-capture: serverless endpoints cannot capture data")
        if request.asynchronous:
            refused.append("--async: an endpoint is either serverless or asynchronous")
        if request.scaling:
            refused.append("--autoscale: serverless scales by itself up to its max concurrency")
        if refused:
            raise SettingsError("a serverless endpoint cannot take: " + "; ".join(refused))
