"""Training: the loop, optimisers and schedules, checkpoints, metrics."""
