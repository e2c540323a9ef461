"""config.json parsing: the official configs are accepted, anything else names the offending field."""
import json

import pytest

from conftest import DATA
from m3ddm_core import FULL_SIZE_CONFIG, ConfigError, parse_config


def test_official_configs_parse():
    full = parse_config(json.loads((DATA / "full_size_config.json").read_text()))
    assert full.block_out_channels == (320, 640, 1280, 1280) and full.attention_heads == 8
    tiny = parse_config(json.loads((DATA / "tiny_unet_config.json").read_text()))
    assert tiny.block_out_channels == (32, 64, 64, 64) and tiny.norm_num_groups == 8


def test_diffusers_bookkeeping_fields_are_ignored():
    cfg = dict(FULL_SIZE_CONFIG, _diffusers_version="0.6.0", _name_or_path="x", sample_size=64)
    assert parse_config(cfg).block_out_channels == (320, 640, 1280, 1280)


@pytest.mark.parametrize("change, field", [
    ({"down_block_types": ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"]}, "down_block_types"),
    ({"up_block_types": ["UpBlockP3D", "CrossAttnUpBlock2D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"]}, "up_block_types"),
    ({"block_out_channels": [320, 640, 1280]}, "down_block_types"),
    ({"cross_attention_dim": 768}, "cross_attention_dim"),
    ({"in_channels": 4}, "in_channels"),
    ({"norm_num_groups": 7}, "norm_num_groups"),
    ({"attention_head_dim": 7}, "attention_head_dim"),
    ({"act_fn": "gelu"}, "act_fn"),
    ({"use_linear_projection": True}, "use_linear_projection"),
    ({"layers_per_block": 0}, "layers_per_block"),
    ({"downsample_padding": 3}, "downsample_padding"),
    ({"_class_name": "UNet2DConditionModel"}, "_class_name"),
    ({"norm_eps": "small"}, "norm_eps"),
])
def test_unsupported_values_name_the_field(change, field):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        parse_config(dict(FULL_SIZE_CONFIG, **change), source="my/config.json")


def test_modelscope_block_names_are_recognised():
    cfg = dict(FULL_SIZE_CONFIG, down_block_types=["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"])
    with pytest.raises(ConfigError, match="text-to-video UNet, not M3DDM"):
        parse_config(cfg)
