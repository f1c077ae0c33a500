"""AT2SELDConfig: defaults, validation with clear messages, serialisation of the nested backbone config."""

import json

import pytest
from transformers import ASTConfig, ASTModel, AutoConfig

from at2seld import AT2SELDConfig, AT2SELDFeatureExtractor
from at2seld.beats_at2seld import BEATsConfig
from at2seld.configuration_at2seld import STARSS23_CLASSES


def test_defaults_describe_the_paper_model():
    c = AT2SELDConfig()
    assert c.backbone_type == "ast" and c.num_tracks == 3 and c.fusion == "late"
    assert c.backbone_config["hidden_size"] == 768 and c.backbone_config["num_hidden_layers"] == 12  # AST-base
    assert c.num_labels == 13 and c.id2label[0] == STARSS23_CLASSES[0] and c.label2id["knock"] == 12
    assert c.num_spatial_channels == 13 and c.frames_per_label == 5
    assert c.detection_thresholds == [0.5] * 13


def test_num_labels_and_id2label_override_the_default_classes():
    assert AT2SELDConfig(num_labels=11).num_labels == 11
    c = AT2SELDConfig(id2label={0: "a", 1: "b"})
    assert c.num_labels == 2 and c.label2id == {"a": 0, "b": 1}


def test_tiny_is_small():
    c = AT2SELDConfig.tiny()
    assert c.backbone_config["hidden_size"] <= 64 and c.backbone_config["num_hidden_layers"] == 2
    assert AT2SELDConfig.tiny(num_tracks=2).num_tracks == 2
    assert AT2SELDConfig.tiny(backbone_type="none").fusion == "none"
    assert AT2SELDConfig.tiny(backbone_type="beats").backbone_config["model_type"] == "at2seld-beats"


@pytest.mark.parametrize("backbone_type", ["ast", "beats", "none"])
def test_save_load_round_trip(tmp_path, backbone_type):
    c = AT2SELDConfig.tiny(backbone_type=backbone_type, class_thresholds=[0.3] * 13, class_pos_weight=[2.0] * 13)
    c.save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["model_type"] == "at2seld" and stored["class_thresholds"] == [0.3] * 13
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, AT2SELDConfig)
    a, b = loaded.to_dict(), c.to_dict()
    a.pop("_name_or_path"), b.pop("_name_or_path")
    assert a == b


def test_backbone_config_objects_become_dicts():
    ast = ASTConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=2, intermediate_size=96)
    c = AT2SELDConfig(backbone_config=ast)
    assert isinstance(c.backbone_config, dict) and c.backbone_config["hidden_size"] == 48
    assert ASTConfig.from_dict(c.backbone_config).intermediate_size == 96
    b = AT2SELDConfig(backbone_type="beats", backbone_config=BEATsConfig.tiny())
    assert b.backbone_config["encoder_embed_dim"] == 32


def test_backbone_name_or_path_fills_the_backbone_config(tmp_path):
    ast = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ASTModel(ast).save_pretrained(tmp_path)
    c = AT2SELDConfig(backbone_name_or_path=str(tmp_path))
    assert c.backbone_config["hidden_size"] == 32 and c.backbone_config["num_hidden_layers"] == 1


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"num_tracks": 0}, "num_tracks=0"),
        ({"num_tracks": 5}, "num_tracks=5"),
        ({"fusion": "middle"}, "fusion='middle'"),
        ({"backbone_type": "panns"}, "backbone_type='panns'"),
        ({"backbone_type": "none", "fusion": "late"}, "fusion='late' needs a semantic backbone"),
        ({"sed_loss": "ce"}, "sed_loss='ce'"),
        ({"doa_loss": "l1"}, "doa_loss='l1'"),
        ({"doa_supervision": "some"}, "doa_supervision='some'"),
        ({"pit": "epoch"}, "pit='epoch'"),
        ({"spatial_time_pool": [5, 2, 1]}, r"spatial_time_pool=\[5, 2, 1\] pools time by 10"),
        ({"spatial_channels": [64, 128]}, "must have the same length"),
        ({"spatial_freq_pool": [8, 8, 2]}, "more than the 64 bins"),
        ({"fusion_dim": 30, "track_heads": 4}, "fusion_dim=30 must be divisible by track_heads=4"),
        ({"class_thresholds": [0.5] * 12}, "class_thresholds has 12 entries"),
        ({"class_thresholds": [1.5] * 13}, "strictly between 0 and 1"),
        ({"class_pos_weight": [0.0] * 13}, "must be positive"),
        ({"backbone_trainable_layers": -2}, "backbone_trainable_layers=-2"),
        ({"focal_alpha": 1.5}, "focal_alpha=1.5"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"backbone_config": {"model_type": "at2seld-beats"}}, "model_type='at2seld-beats'"),
        ({"descriptors": ["logmel", "linspec"]}, "different frequency axes"),
    ],
)
def test_impossible_settings_are_rejected_with_field_and_value(overrides, match):
    with pytest.raises(Exception, match=match):
        AT2SELDConfig(**overrides)


def test_descriptor_channels_must_match_the_feature_extractor():
    c = AT2SELDConfig()
    c.check_feature_names(AT2SELDFeatureExtractor(descriptors=["logmel", "phase", "iv"]).spatial_feature_names)
    other = AT2SELDFeatureExtractor(descriptors=["logmel", "iv"], backbone_type="none")
    with pytest.raises(ValueError, match="built for 13 channels.*features have 7 channels"):
        c.check_feature_names(other.spatial_feature_names)
