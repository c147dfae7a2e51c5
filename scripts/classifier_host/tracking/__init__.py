"""MLflow tracking of the jobs the launchers run: every training job, search and trial is an MLflow run.

store.py: where the runs go (MLFLOW_TRACKING_URI, else a SQLite file under build/mlflow/). journal.py: the
queue that sends to it off the job's path, and keeps what the store did not take in a file to replay.
metric_tap.py: the job's metric lines, read as the log passes. runs.py: what a training job, a search and its
trials log (parameters, tags, metrics, artifacts)."""
