"""What the device computes: the preprocessing spec and filter, the window rule, the quality check and the AD8232 front-end model."""
