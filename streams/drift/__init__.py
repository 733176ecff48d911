"""Drift detection: reference profiles per camera and model, and online detectors against them."""
