"""Hyperparameter search: the local search over local-mode jobs, and the result files both searches write."""
