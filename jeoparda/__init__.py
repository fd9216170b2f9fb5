"""jeoparda: distributed deep-learning benchmarks on Sentinel-2 (BigEarthNet) for HPC systems."""
__version__ = "0.1.0"
