"""The ``jeoparda-shards`` format: writer, reader, manifest and inspection."""
