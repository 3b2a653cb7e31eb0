"""Scoring: the benchmark run of every contender, tiling, the metrics, the classical baselines and the sensor's report.
"""
