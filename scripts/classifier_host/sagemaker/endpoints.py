"""Cloud real-time endpoints: model + endpoint config + endpoint (sagemaker-core resources), autoscaling
(boto3's application-autoscaling: v3 has no wrapper for it), invocation, and deletion of all of it.

Every resource of one deployment carries the endpoint's name (model, endpoint config, endpoint), so
deletion finds them all even when an earlier deletion stopped half-way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# How long deploy waits for InService (SageMaker gives up on a container that never answers /ping).
DEPLOY_TIMEOUT_S = 30 * 60


def deploy(boto, image_uri: str, model_data: str, role: str, endpoint_name: str,
           instance_type: str = "ml.m5.xlarge", instance_count: int = 1, data_capture_s3: str | None = None,
           kms_key_id: str | None = None, vpc_config: dict | None = None, network_isolation: bool = False,
           environment: dict[str, str] | None = None, wait: bool = True) -> str:
    """Model + endpoint config + endpoint, all named endpoint_name; with wait, until InService (RuntimeError
    with SageMaker's FailureReason when it fails). data_capture_s3: capture every request and response
    there (Model Monitor's format). Returns the endpoint name."""
    from sagemaker.core import resources, shapes

    region = boto.region_name
    model_kwargs = {}
    if vpc_config:
        model_kwargs["vpc_config"] = shapes.VpcConfig(subnets=list(vpc_config["Subnets"]),
                                                      security_group_ids=list(vpc_config["SecurityGroupIds"]))
    if network_isolation:
        model_kwargs["enable_network_isolation"] = True
    resources.Model.create(
        model_name=endpoint_name, execution_role_arn=role,
        primary_container=shapes.ContainerDefinition(image=image_uri, model_data_url=model_data,
                                                     environment=dict(environment or {})),
        **model_kwargs, session=boto, region=region)
    config_kwargs = {"kms_key_id": kms_key_id} if kms_key_id else {}
    if data_capture_s3:
        config_kwargs["data_capture_config"] = shapes.DataCaptureConfig(
            enable_capture=True, initial_sampling_percentage=100, destination_s3_uri=data_capture_s3,
            capture_options=[shapes.CaptureOption(capture_mode="Input"), shapes.CaptureOption(capture_mode="Output")],
            **({"kms_key_id": kms_key_id} if kms_key_id else {}))
    resources.EndpointConfig.create(
        endpoint_config_name=endpoint_name,
        production_variants=[shapes.ProductionVariant(variant_name=VARIANT, model_name=endpoint_name,
                                                      initial_instance_count=instance_count,
                                                      instance_type=instance_type, initial_variant_weight=1.0)],
        **config_kwargs, session=boto, region=region)
    endpoint = resources.Endpoint.create(endpoint_name=endpoint_name, endpoint_config_name=endpoint_name,
                                         session=boto, region=region)
    if wait:
        from sagemaker.core.utils.exceptions import FailedStatusError

        try:
            endpoint.wait_for_status("InService", timeout=DEPLOY_TIMEOUT_S)
        except FailedStatusError as err:
            raise RuntimeError(f"endpoint {endpoint_name} failed: {err}") from err
    return endpoint_name


def enable_autoscaling(autoscaling, endpoint_name: str, min_count: int, max_count: int,
                       invocations_per_instance: int) -> None:
    """Target tracking on SageMakerVariantInvocationsPerInstance (invocations per instance per minute)."""
    if not 1 <= min_count <= max_count:
        raise ValueError(f"autoscaling needs 1 <= min ({min_count}) <= max ({max_count})")
    resource = f"endpoint/{endpoint_name}/variant/{VARIANT}"
    autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                         ScalableDimension=SCALABLE_DIMENSION,
                                         MinCapacity=min_count, MaxCapacity=max_count)
    autoscaling.put_scaling_policy(
        PolicyName=f"{endpoint_name}-invocations", ServiceNamespace="sagemaker", ResourceId=resource,
        ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            # Scale out fast on a burst, scale in slowly (a new instance takes minutes to come up).
            "ScaleOutCooldown": 60, "ScaleInCooldown": 300})


@dataclass
class Deletion:
    """What delete() removed, and whether anything of the endpoint was there at all."""
    deleted: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.deleted)


def delete(boto, endpoint_name: str, autoscaling=None) -> Deletion:
    """Delete the endpoint, its endpoint config, its models and its scaling targets, whichever of them
    exist: a deletion that stopped half-way (endpoint gone, config left) is finished by the next one.

    Existence is read from List* calls with the exact name, not from an error message's text.
    """
    from sagemaker.core.utils.utils import SageMakerClient

    client = SageMakerClient(session=boto, region_name=boto.region_name).sagemaker_client
    done = Deletion()
    endpoints = [e["EndpointName"] for e in client.list_endpoints(NameContains=endpoint_name)["Endpoints"]]
    configs = [c["EndpointConfigName"] for c in
               client.list_endpoint_configs(NameContains=endpoint_name)["EndpointConfigs"]]
    config_name, models = None, {endpoint_name}
    if endpoint_name in endpoints:
        config_name = client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    elif endpoint_name in configs:
        config_name = endpoint_name
    variants = []
    if config_name:
        variants = client.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
        models |= {variant["ModelName"] for variant in variants}
    if autoscaling is not None:
        for variant_name in {v["VariantName"] for v in variants} or {VARIANT}:
            resource = f"endpoint/{endpoint_name}/variant/{variant_name}"
            targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource],
                                                            ScalableDimension=SCALABLE_DIMENSION)
            if targets["ScalableTargets"]:
                autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                                       ScalableDimension=SCALABLE_DIMENSION)
                done.deleted.append(f"scaling target {resource}")
    if endpoint_name in endpoints:
        client.delete_endpoint(EndpointName=endpoint_name)
        done.deleted.append(f"endpoint {endpoint_name}")
    if config_name:
        client.delete_endpoint_config(EndpointConfigName=config_name)
        done.deleted.append(f"endpoint config {config_name}")
    for model in sorted(models):
        if any(m["ModelName"] == model for m in client.list_models(NameContains=model)["Models"]):
            client.delete_model(ModelName=model)
            done.deleted.append(f"model {model}")
    return done


def invoke(boto, endpoint_name: str, body: bytes, content_type: str, accept: str = "application/json",
           custom_attributes: str | None = None) -> bytes:
    """InvokeEndpoint through sagemaker-core's Endpoint; the answer's body. botocore's ClientError (a
    ModelError carries the container's status and message) reaches the caller."""
    from sagemaker.core import resources

    endpoint = resources.Endpoint(endpoint_name=endpoint_name)
    answer = endpoint.invoke(body=body, content_type=content_type, accept=accept,
                             **({"custom_attributes": custom_attributes} if custom_attributes else {}),
                             session=boto, region=boto.region_name)
    return answer.body.read() if hasattr(answer.body, "read") else answer.body
