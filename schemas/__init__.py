"""Versioned message contracts of the Kafka topics that cameras, the worker and plant systems share."""
