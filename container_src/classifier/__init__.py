"""Image classifier that runs inside the SageMaker training and serving images.

Never imports the SageMaker SDK: the host side (scripts/) does that.
"""
