"""The Docker images: their names (the Makefile's), which serving image a model needs, push, provenance, SBOMs."""
