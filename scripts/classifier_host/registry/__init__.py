"""The model registry: register.py's models with their evaluation, and which one is the champion.

gate.py: whether a candidate may replace the champion (the one rule, local and cloud). candidate.py: a model
to register, fetched and evaluated on a labelled folder. mlflow_registry.py: MLflow's registry (local default).
sagemaker_registry.py: SageMaker Model Registry (--cloud). references.py: what deploy.py and transform.py
accept as --model (champion, a version, an ARN)."""
