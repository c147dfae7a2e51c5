"""SageMaker Debugger: the smdebug hook the trainer registers (training image) and the rules the host
evaluates on the tensors it saved.
"""
