"""Training, distillation, calibration, learning curves and the one-command recipe."""
