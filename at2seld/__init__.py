"""at2seld: pretrained audio-tagging backbones (AST, BEATs) turned into FOA SELD systems.

Importing the package registers the AT2SELD classes with the transformers Auto* factories.
"""

from transformers import AutoConfig, AutoFeatureExtractor

from .configuration_at2seld import DESCRIPTOR_FAMILIES, AT2SELDConfig, descriptor_channel_names
from .feature_extraction_at2seld import AT2SELDFeatureExtractor

__version__ = "0.1.0"

AutoConfig.register(AT2SELDConfig.model_type, AT2SELDConfig, exist_ok=True)
AutoFeatureExtractor.register(AT2SELDConfig, AT2SELDFeatureExtractor, exist_ok=True)

__all__ = [
    "AT2SELDConfig",
    "AT2SELDFeatureExtractor",
    "DESCRIPTOR_FAMILIES",
    "descriptor_channel_names",
]
