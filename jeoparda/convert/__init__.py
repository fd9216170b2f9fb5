"""``jeoparda convert``: the conversion plan, workers and MPI ranks, resampling, per-shard records."""
