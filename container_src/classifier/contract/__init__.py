"""What the images share with SageMaker and the host: container paths, CPU and memory limits, metric lines,
hyperparameters. Standard library only, so every image and the host can import it.
"""
