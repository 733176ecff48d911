"""defectline: deep-learning visual inspection from camera to PLC, with Kafka in between."""

__version__ = "0.1.0"
