"""The Faust worker: inference, routing to PLCs, recording, and its health and metrics."""
