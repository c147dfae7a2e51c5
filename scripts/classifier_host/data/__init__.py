"""Datasets: the dog-breed download, S3 transfer, the generated sample set, archives unpacked once."""
