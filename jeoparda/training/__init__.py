"""Training: the loop, optimisers and schedules, checkpoints, evaluation, the results records and their recorder."""
