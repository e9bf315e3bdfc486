"""Measuring a model: per-category AP, mAP, thresholds and VAD error (`metrics`) and the Table-1 report (`report`).

Why below the stages: training validates with it, export gates precision changes with it, and `emoedge eval`
reports with it — one way to compute mAP, whichever stage asks.
"""
