"""What every SageMaker resource a command creates shares: the role it runs as, the KMS key its data is
encrypted with, the VPC it reaches and whether it may reach the network at all. Training and tuning jobs
(training.JobSpec), endpoints and Batch Transform jobs take it as one object, built from the settings once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
    role: str
    kms_key_id: str | None = None
    # {"Subnets": [...], "SecurityGroupIds": [...]} (settings.Settings.vpc_config).
    vpc_config: dict | None = None
    network_isolation: bool = False

    @classmethod
    def of(cls, cfg, network_isolation: bool = False) -> Access:
        """From the AWS settings (settings.load()) and the command's --network-isolation."""
        return cls(cfg.role_arn, cfg.kms_key_id, cfg.vpc_config, network_isolation)

    def vpc_shape(self):
        """sagemaker-core's VpcConfig, or None without a VPC."""
        if not self.vpc_config:
            return None
        from sagemaker.core import shapes

        return shapes.VpcConfig(
            subnets=list(self.vpc_config["Subnets"]), security_group_ids=list(self.vpc_config["SecurityGroupIds"])
        )
