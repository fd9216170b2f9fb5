"""``jeoparda download``: the published archives, fetched, verified and unpacked (docs/download.md)."""
