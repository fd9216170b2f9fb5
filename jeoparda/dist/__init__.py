"""Cluster environment detection and distributed backends."""
