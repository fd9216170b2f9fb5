"""Benchmark harness: loader, training throughput, all-reduce; scaling maths and reports."""
