"""The training job (training image only): entry point, trainer, epoch loop, data, checkpoints,
distributed set-up, export, profiling, signals.
"""
