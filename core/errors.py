"""Root exception of the project; every package derives its errors from it."""


class DefectlineError(Exception):
    """Base class for errors raised by defectline."""


class ConfigError(DefectlineError):
    """The plant configuration is missing, malformed or invalid."""


class DependencyMissingError(DefectlineError):
    """An optional package or external program that a feature needs is not installed."""
