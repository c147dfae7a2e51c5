"""One module per command; each has `main(argv=None) -> int`. They parse arguments first and import the
SageMaker SDK only after (it takes over a second), so `--help` answers at once."""
