"""Batch inference over a folder or an S3 prefix (scripts/transform.py): which files go in, and what
comes out of them (predictions.jsonl, summary.json, the confusion matrix when the input is labelled).
jobs.py runs them (local mode, or Batch Transform); their SageMaker calls are
classifier_host.sagemaker.transform's."""
