"""Benchmarks: science-quality scoring (metrics, rPIE baseline, quality run) and timings."""
