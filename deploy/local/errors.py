"""Errors raised while fetching, starting or stopping the local services."""

from defectline.errors import DefectlineError, DependencyMissingError


class StackError(DefectlineError):
    """A local service (Kafka broker, PostgreSQL cluster) could not be prepared or run."""


class ToolMissingError(StackError, DependencyMissingError):
    """An external program the local stack needs (java, mvn, initdb) is not installed."""


class JarFetchError(StackError):
    """Maven failed to download the Kafka broker jars."""


class ServiceStartError(StackError):
    """A local service did not start or did not become ready in time."""
