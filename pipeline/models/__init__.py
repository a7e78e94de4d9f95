"""Model architectures and the checkpoint format."""
