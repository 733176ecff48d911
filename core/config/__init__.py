"""Plant configuration: models, the embedded demo plant and the loader."""

from defectline.config.loader import load_config
from defectline.config.models import PlantConfig

__all__ = ["PlantConfig", "load_config"]
