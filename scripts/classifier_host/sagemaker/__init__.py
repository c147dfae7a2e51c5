"""Every SageMaker SDK call of the project, on the SDK's supported line (v3: `sagemaker-core`).

    access.py     what every resource shares: role, KMS key, VPC, network isolation (one object)
    session.py    boto3 / SageMaker sessions, job names, the SDK settings every call carries (no telemetry)
    local.py      local mode: training jobs and endpoints in Docker on this machine
    training.py   cloud training jobs (spot, checkpoints, KMS, VPC, Debugger and profiler)
    tuning.py     cloud hyperparameter tuning jobs
    endpoints.py  cloud endpoints (real-time and asynchronous), autoscaling, invocation, deletion
    transform.py  Batch Transform jobs, local and cloud

Callers pass plain values and get plain values back; nothing here runs at import.
"""
