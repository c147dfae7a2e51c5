"""Cloud endpoints, real-time or asynchronous: model + endpoint config + endpoint (sagemaker-core resources),
autoscaling (boto3's application-autoscaling and, to wake an async endpoint scaled to zero, a CloudWatch
alarm: v3 has no wrapper for either), invocation, and deletion of all of it.

Every resource of one deployment carries the endpoint's name (model, endpoint config, endpoint, scaling
policies, alarm), so deletion finds them all even when an earlier deletion stopped half-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .access import Access
from .session import sagemaker_client

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# How long deploy waits for InService (SageMaker gives up on a container that never answers /ping).
DEPLOY_TIMEOUT_S = 30 * 60
# InvokeEndpointAsync's limits: payloads up to 1 GB; InvocationTimeoutSeconds 900 unless given, at most 3600.
ASYNC_MAX_PAYLOAD_MB = 1024
ASYNC_INVOCATION_TIMEOUT_S = 900
ASYNC_MAX_INVOCATION_TIMEOUT_S = 3600
# The metrics SageMaker publishes for async endpoints (namespace AWS/SageMaker, dimension EndpointName).
BACKLOG_METRIC = "ApproximateBacklogSizePerInstance"
NO_CAPACITY_METRIC = "HasBacklogWithoutCapacity"


@dataclass(frozen=True)
class AsyncOptions:
    """An async endpoint's endpoint config: where SageMaker writes answers and failures, how many requests
    it hands one instance at once, and the SNS topics it notifies (optional)."""

    output_s3: str
    failure_s3: str
    max_concurrent: int
    success_topic: str | None = None
    error_topic: str | None = None


def create_model(
    boto,
    name: str,
    image_uri: str | None,
    model_data: str,
    access: Access,
    environment: dict[str, str] | None = None,
    package: tuple[str, str | None] | None = None,
) -> None:
    """CreateModel: the serving image with its model.tar.gz, run as access.role. The VPC and network
    isolation of an endpoint or a transform job live here, on the model. package: (a model package version's
    ARN, its inference specification's name or None for the main one): the registry names image and model."""
    from sagemaker.core import resources, shapes

    model_kwargs = {}
    if access.vpc_config:
        model_kwargs["vpc_config"] = access.vpc_shape()
    if access.network_isolation:
        model_kwargs["enable_network_isolation"] = True
    resources.Model.create(
        model_name=name,
        execution_role_arn=access.role,
        primary_container=(
            shapes.ContainerDefinition(
                model_package_name=package[0],
                **({"inference_specification_name": package[1]} if package[1] else {}),
                environment=dict(environment or {}),
            )
            if package
            else shapes.ContainerDefinition(
                image=image_uri, model_data_url=model_data, environment=dict(environment or {})
            )
        ),
        **model_kwargs,
        session=boto,
        region=boto.region_name,
    )


def deploy(
    boto,
    image_uri: str,
    model_data: str,
    access: Access,
    endpoint_name: str,
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    data_capture_s3: str | None = None,
    environment: dict[str, str] | None = None,
    async_options: AsyncOptions | None = None,
    wait: bool = True,
    package: tuple[str, str | None] | None = None,
    tags: dict[str, str] | None = None,
    serverless: dict | None = None,
) -> str:
    """Model + endpoint config + endpoint, all named endpoint_name; with wait, until InService (RuntimeError
    with SageMaker's FailureReason when it fails). data_capture_s3: capture every request and response
    there (Model Monitor's format). async_options: an asynchronous endpoint. serverless: the variant's
    ProductionVariantServerlessConfig fields instead of instances. Returns the endpoint name."""
    from sagemaker.core import resources, shapes

    region = boto.region_name
    create_model(boto, endpoint_name, image_uri, model_data, access, environment, package)
    create_config(
        boto,
        endpoint_name,
        endpoint_name,
        access,
        instance_type,
        instance_count,
        data_capture_s3=data_capture_s3,
        async_options=async_options,
        serverless=serverless,
    )
    endpoint = resources.Endpoint.create(
        endpoint_name=endpoint_name,
        endpoint_config_name=endpoint_name,
        **({"tags": [shapes.Tag(key=k, value=v) for k, v in tags.items()]} if tags else {}),
        session=boto,
        region=region,
    )
    if wait:
        from sagemaker.core.utils.exceptions import FailedStatusError

        try:
            endpoint.wait_for_status("InService", timeout=DEPLOY_TIMEOUT_S)
        except FailedStatusError as err:
            raise RuntimeError(f"endpoint {endpoint_name} failed: {err}") from err
    return endpoint_name


def create_config(
    boto,
    config_name: str,
    model_name: str,
    access: Access,
    instance_type: str,
    instance_count: int,
    data_capture_s3: str | None = None,
    async_options: AsyncOptions | None = None,
    serverless: dict | None = None,
    variant: str = VARIANT,
) -> None:
    """CreateEndpointConfig: one variant (`variant`: an update keeps the endpoint's) of `model_name`, on
    instances or serverless (`serverless`: ProductionVariantServerlessConfig as the service names it). A
    serverless config gets no KmsKeyId: that key encrypts an instance's ML storage volume, which serverless
    has not."""
    from sagemaker.core import resources, shapes

    if serverless:
        # sagemaker-core 2.x sends ProductionVariantServerlessConfig.memory_size_in_mb as "MemorySizeInMb",
        # which the service does not know (botocore refuses it): this one goes through the client as written.
        client = sagemaker_client(boto)
        client.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[
                {
                    "VariantName": variant,
                    "ModelName": model_name,
                    "InitialVariantWeight": 1.0,
                    "ServerlessConfig": dict(serverless),
                }
            ],
        )
        return
    kms_key_id = access.kms_key_id
    config_kwargs = {"kms_key_id": kms_key_id} if kms_key_id and not serverless else {}
    if data_capture_s3:
        config_kwargs["data_capture_config"] = shapes.DataCaptureConfig(
            enable_capture=True,
            initial_sampling_percentage=100,
            destination_s3_uri=data_capture_s3,
            capture_options=[shapes.CaptureOption(capture_mode="Input"), shapes.CaptureOption(capture_mode="Output")],
            **({"kms_key_id": kms_key_id} if kms_key_id else {}),
        )
    if async_options:
        config_kwargs["async_inference_config"] = async_inference_config(async_options, kms_key_id)
    resources.EndpointConfig.create(
        endpoint_config_name=config_name,
        production_variants=[
            shapes.ProductionVariant(
                variant_name=variant,
                model_name=model_name,
                initial_variant_weight=1.0,
                initial_instance_count=instance_count,
                instance_type=instance_type,
            )
        ],
        **config_kwargs,
        session=boto,
        region=boto.region_name,
    )


def async_inference_config(options: AsyncOptions, kms_key_id: str | None):
    """The endpoint config's AsyncInferenceConfig (sagemaker-core drops the None fields from the request)."""
    from sagemaker.core import shapes

    topics = {"success_topic": options.success_topic, "error_topic": options.error_topic}
    notification = shapes.AsyncInferenceNotificationConfig(**topics) if any(topics.values()) else None
    return shapes.AsyncInferenceConfig(
        client_config=shapes.AsyncInferenceClientConfig(max_concurrent_invocations_per_instance=options.max_concurrent),
        output_config=shapes.AsyncInferenceOutputConfig(
            s3_output_path=options.output_s3,
            s3_failure_path=options.failure_s3,
            kms_key_id=kms_key_id,
            notification_config=notification,
        ),
    )


def scaling_resource(endpoint_name: str, variant: str = VARIANT) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant}"


def wake_up_alarm_name(endpoint_name: str) -> str:
    """The CloudWatch alarm that starts an async endpoint scaled to zero (deletion finds it by this name)."""
    return f"{endpoint_name}-has-backlog-without-capacity"


def _register(autoscaling, endpoint_name: str, min_count: int, max_count: int) -> str:
    resource = scaling_resource(endpoint_name)
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=min_count,
        MaxCapacity=max_count,
    )
    return resource


def _track(autoscaling, endpoint_name: str, resource: str, policy: str, target: float, metric: dict) -> None:
    """A target-tracking policy; `metric` is its Predefined- or CustomizedMetricSpecification."""
    autoscaling.put_scaling_policy(
        PolicyName=f"{endpoint_name}-{policy}",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(target),
            **metric,
            # Scale out fast on a burst, scale in slowly (a new instance takes minutes to come up).
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 300,
        },
    )


def enable_autoscaling(
    autoscaling, endpoint_name: str, min_count: int, max_count: int, invocations_per_instance: int
) -> None:
    """Target tracking on SageMakerVariantInvocationsPerInstance (invocations per instance per minute)."""
    if not 1 <= min_count <= max_count:
        raise ValueError(f"autoscaling needs 1 <= min ({min_count}) <= max ({max_count})")
    resource = _register(autoscaling, endpoint_name, min_count, max_count)
    _track(
        autoscaling,
        endpoint_name,
        resource,
        "invocations",
        invocations_per_instance,
        {"PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
    )


def enable_async_autoscaling(
    autoscaling, cloudwatch, endpoint_name: str, min_count: int, max_count: int, backlog_per_instance: int
) -> None:
    """Target tracking on the queue (ApproximateBacklogSizePerInstance): an async endpoint's invocations
    are not counted by SageMakerVariantInvocationsPerInstance. min_count 0 scales to zero; then a step
    policy and the alarm that triggers it (HasBacklogWithoutCapacity) bring the first instance back as
    soon as a request waits: target tracking alone would wait until the backlog passes its target
    (AWS's recipe: https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html)."""
    if not 0 <= min_count <= max_count or max_count < 1:
        raise ValueError(f"async autoscaling needs 0 <= min ({min_count}) <= max ({max_count}) and max >= 1")
    resource = _register(autoscaling, endpoint_name, min_count, max_count)
    _track(
        autoscaling,
        endpoint_name,
        resource,
        "backlog",
        backlog_per_instance,
        {
            "CustomizedMetricSpecification": {
                "MetricName": BACKLOG_METRIC,
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
                "Statistic": "Average",
            }
        },
    )
    if min_count == 0:
        policy_arn = autoscaling.put_scaling_policy(
            PolicyName=f"{endpoint_name}-has-backlog",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="StepScaling",
            StepScalingPolicyConfiguration={
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Average",
                "Cooldown": 300,
                # one more instance whenever the alarm's metric is at or above its threshold
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
        )["PolicyARN"]
        cloudwatch.put_metric_alarm(
            AlarmName=wake_up_alarm_name(endpoint_name),
            MetricName=NO_CAPACITY_METRIC,
            Namespace="AWS/SageMaker",
            Dimensions=[{"Name": "EndpointName", "Value": endpoint_name}],
            Statistic="Average",
            Period=60,
            EvaluationPeriods=2,
            DatapointsToAlarm=2,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="missing",
            AlarmActions=[policy_arn],
        )


@dataclass
class Deletion:
    """What delete() removed, and whether anything of the endpoint was there at all."""

    deleted: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.deleted)


def delete(boto, endpoint_name: str, autoscaling=None, cloudwatch=None) -> Deletion:
    """Delete the endpoint, its shadow tests, every endpoint config and model of it (its first deployment's,
    named after it, and each update's, ENDPOINT--*: rollout.belongs_to), its scaling targets (which takes
    their policies with them) and its alarms (the wake-up alarm, the rollback alarms), whichever of them
    exist: a deletion that stopped half-way (endpoint gone, config left) is finished by the next one.

    Existence is read from List* calls with the exact name, not from an error message's text.
    """
    from . import rollout, shadow

    client = sagemaker_client(boto)
    done = Deletion()
    endpoints = [e["EndpointName"] for e in client.list_endpoints(NameContains=endpoint_name)["Endpoints"]]
    configs = set(rollout.configs_of(boto, endpoint_name))
    if endpoint_name in endpoints:
        configs.add(client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"])
    models, variants = {endpoint_name}, []
    for config in sorted(configs):
        variants += client.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    models |= {variant["ModelName"] for variant in variants}
    if endpoint_name in endpoints:
        done.deleted += shadow.remove_all(boto, endpoint_name)
    if autoscaling is not None:
        for variant_name in sorted({v["VariantName"] for v in variants} or {VARIANT}):
            resource = scaling_resource(endpoint_name, variant_name)
            targets = autoscaling.describe_scalable_targets(
                ServiceNamespace="sagemaker", ResourceIds=[resource], ScalableDimension=SCALABLE_DIMENSION
            )
            if targets["ScalableTargets"]:
                autoscaling.deregister_scalable_target(
                    ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=SCALABLE_DIMENSION
                )
                done.deleted.append(f"scaling target {resource}")
    if cloudwatch is not None:
        names = [wake_up_alarm_name(endpoint_name), *rollout.alarm_names(endpoint_name)]
        alarms = [a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]]
        if alarms:
            cloudwatch.delete_alarms(AlarmNames=alarms)
            done.deleted += [f"alarm {alarm}" for alarm in alarms]
    if endpoint_name in endpoints:
        client.delete_endpoint(EndpointName=endpoint_name)
        done.deleted.append(f"endpoint {endpoint_name}")
    for config in sorted(configs):
        client.delete_endpoint_config(EndpointConfigName=config)
        done.deleted.append(f"endpoint config {config}")
    listed = {m["ModelName"] for m in client.list_models(NameContains=endpoint_name, MaxResults=100)["Models"]}
    for model in sorted(models | {m for m in listed if rollout.belongs_to(m, endpoint_name)}):
        if model in listed:
            client.delete_model(ModelName=model)
            done.deleted.append(f"model {model}")
    return done


def invoke(
    boto,
    endpoint_name: str,
    body: bytes,
    content_type: str,
    accept: str = "application/json",
    custom_attributes: str | None = None,
) -> bytes:
    """InvokeEndpoint through sagemaker-core's Endpoint; the answer's body. botocore's ClientError (a
    ModelError carries the container's status and message) reaches the caller."""
    from sagemaker.core import resources

    endpoint = resources.Endpoint(endpoint_name=endpoint_name)
    answer = endpoint.invoke(
        body=body,
        content_type=content_type,
        accept=accept,
        **({"custom_attributes": custom_attributes} if custom_attributes else {}),
        session=boto,
        region=boto.region_name,
    )
    return answer.body.read() if hasattr(answer.body, "read") else answer.body


def is_async(boto, endpoint_name: str) -> bool:
    """Whether the endpoint's config has an AsyncInferenceConfig (it then takes only InvokeEndpointAsync)."""
    client = sagemaker_client(boto)
    config_name = client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    return "AsyncInferenceConfig" in client.describe_endpoint_config(EndpointConfigName=config_name)


def invoke_async(
    boto,
    endpoint_name: str,
    input_location: str,
    content_type: str,
    timeout_s: int,
    accept: str = "application/json",
    custom_attributes: str | None = None,
) -> tuple[str, str]:
    """InvokeEndpointAsync through sagemaker-core's Endpoint on a request already in S3: SageMaker queues
    it and answers at once with where the answer (or the failure) will appear, (output, failure) S3 URIs."""
    from sagemaker.core import resources

    endpoint = resources.Endpoint(endpoint_name=endpoint_name)
    answer = endpoint.invoke_async(
        input_location=input_location,
        content_type=content_type,
        accept=accept,
        custom_attributes=custom_attributes,
        invocation_timeout_seconds=timeout_s,
        session=boto,
        region=boto.region_name,
    )
    return answer.output_location, answer.failure_location
