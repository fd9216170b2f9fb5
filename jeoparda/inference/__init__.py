"""Inference with a trained model: whole tiles as class maps."""
