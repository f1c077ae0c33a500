"""at2seld: pretrained audio-tagging backbones (AST, BEATs) turned into FOA SELD systems.

Importing the package registers the AT2SELD classes with the transformers Auto* factories.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from .configuration_at2seld import DESCRIPTOR_FAMILIES, AT2SELDConfig, descriptor_channel_names
from .feature_extraction_at2seld import AT2SELDFeatureExtractor
from .labels_at2seld import encode_labels
from .losses_at2seld import AT2SELDLoss, compute_class_pos_weights
from .modeling_at2seld import AT2SELDForSoundEventLocalization, AT2SELDOutput, AT2SELDPreTrainedModel
from .pipeline_at2seld import SoundEventLocalizationPipeline, register_pipeline, save_dcase_csv, save_for_hub

__version__ = "0.1.0"

AutoConfig.register(AT2SELDConfig.model_type, AT2SELDConfig, exist_ok=True)
AutoFeatureExtractor.register(AT2SELDConfig, AT2SELDFeatureExtractor, exist_ok=True)
AutoModel.register(AT2SELDConfig, AT2SELDForSoundEventLocalization, exist_ok=True)
# save_pretrained writes the remote-code files and auto_map, so the Hub copy loads without this package.
AT2SELDConfig.register_for_auto_class()
AT2SELDForSoundEventLocalization.register_for_auto_class("AutoModel")
AT2SELDFeatureExtractor.register_for_auto_class()
register_pipeline()  # task "sound-event-localization"; Pipeline.save_pretrained writes it as a custom pipeline

__all__ = [
    "AT2SELDConfig",
    "AT2SELDFeatureExtractor",
    "AT2SELDForSoundEventLocalization",
    "AT2SELDLoss",
    "AT2SELDOutput",
    "AT2SELDPreTrainedModel",
    "SoundEventLocalizationPipeline",
    "DESCRIPTOR_FAMILIES",
    "compute_class_pos_weights",
    "descriptor_channel_names",
    "encode_labels",
    "save_dcase_csv",
    "save_for_hub",
]
