"""Micro-benchmarks: loader, training throughput, all-reduce, inference (analysis of runs is in jeoparda.report)."""
