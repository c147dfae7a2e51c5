"""The model: its artifact, network, runtimes and the choice among them, image decoding and eval
preprocessing, explanations, evaluation. Imported by training, serving and the host; imports neither.
"""
