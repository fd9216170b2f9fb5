"""Data: archive readers, synthetic archive writer, converter, shard format and loaders."""
