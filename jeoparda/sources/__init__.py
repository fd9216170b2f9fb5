"""Archive readers, one module per archive kind, split lists, GeoTIFF I/O and synthetic writers."""
