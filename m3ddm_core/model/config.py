"""The M3DDM UNet configuration: the official diffusers-style ``config.json``, validated.

The released checkpoints ship a ``config.json`` written by diffusers' ``ConfigMixin`` for the class
``UNet3DConditionModel`` of the official code. Only the fields that change the architecture are honoured;
a value this implementation cannot honour is an error naming the field, never a silent fallback.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

CROSS_ATTN_DOWN = "CrossAttnDownBlock3D"
PLAIN_DOWN = "DownBlockP3D"
CROSS_ATTN_UP = "CrossAttnUpBlock3D"
PLAIN_UP = "UpBlockP3D"

# The paper's 1299.28M-parameter model (global-frame encoder included).
FULL_SIZE_CONFIG: dict[str, Any] = {
    "_class_name": "UNet3DConditionModel",
    "sample_size": 32,
    "in_channels": 9,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": [CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, PLAIN_DOWN],
    "up_block_types": [PLAIN_UP, CROSS_ATTN_UP, CROSS_ATTN_UP, CROSS_ATTN_UP],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "cross_attention_dim": 320,
    "attention_head_dim": 8,
}

# Width of the global-frame encoder output: fixed by its last convolution, not by the config.
GLOBAL_CONTEXT_DIM = 320

# diffusers UNet fields that other architectures set; the value each must have for M3DDM.
_FOREIGN_FIELDS: dict[str, Any] = {
    "use_linear_projection": False,
    "upcast_attention": False,
    "only_cross_attention": False,
    "dual_cross_attention": False,
    "resnet_time_scale_shift": "default",
    "class_embed_type": None,
    "num_class_embeds": None,
    "addition_embed_type": None,
    "time_cond_proj_dim": None,
    "encoder_hid_dim": None,
    "transformer_layers_per_block": 1,
    "num_attention_heads": None,
}


class ConfigError(ValueError):
    """A config.json this architecture cannot honour; the message names the field."""


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: int
    norm_num_groups: int
    norm_eps: float
    attention_heads: int
    cross_attention_dim: int
    flip_sin_to_cos: bool
    freq_shift: float
    downsample_padding: int
    mid_block_scale_factor: float
    center_input_sample: bool

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4


def _field(cfg: Mapping[str, Any], name: str, kind: type, source: str) -> Any:
    value = cfg.get(name, FULL_SIZE_CONFIG.get(name))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: field '{name}' must be {kind.__name__}, got {value!r}")
    return value


def parse_config(cfg: Mapping[str, Any], source: str = "config") -> UNetConfig:
    """Validate a diffusers-style M3DDM config dict; missing fields take the full-size defaults."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
    cls = cfg.get("_class_name", "UNet3DConditionModel")
    if cls != "UNet3DConditionModel":
        raise ConfigError(f"{source}: field '_class_name' is {cls!r}; an M3DDM UNet config says 'UNet3DConditionModel'")
    for name, wanted in _FOREIGN_FIELDS.items():
        if name in cfg and cfg[name] != wanted and not (name == "transformer_layers_per_block" and cfg[name] in ([1], (1,))):
            raise ConfigError(f"{source}: field '{name}' = {cfg[name]!r} is not supported by M3DDM (needs {wanted!r}); "
                              "this config belongs to another UNet architecture")

    channels = tuple(_field(cfg, "block_out_channels", list, source))
    if not channels or not all(isinstance(c, int) and c > 0 for c in channels):
        raise ConfigError(f"{source}: field 'block_out_channels' must be a non-empty list of positive ints, got {list(channels)}")
    down = tuple(_field(cfg, "down_block_types", list, source))
    up = tuple(_field(cfg, "up_block_types", list, source))
    for name, types, allowed in (("down_block_types", down, (CROSS_ATTN_DOWN, PLAIN_DOWN)),
                                 ("up_block_types", up, (CROSS_ATTN_UP, PLAIN_UP))):
        if len(types) != len(channels):
            raise ConfigError(f"{source}: field '{name}' has {len(types)} entries but 'block_out_channels' has {len(channels)}")
        for t in types:
            if t not in allowed:
                hint = " (a diffusers/ModelScope text-to-video UNet, not M3DDM)" if t in ("DownBlock3D", "UpBlock3D") else ""
                raise ConfigError(f"{source}: field '{name}' contains {t!r}{hint}; M3DDM blocks are {', '.join(allowed)}")

    groups = _field(cfg, "norm_num_groups", int, source)
    heads = _field(cfg, "attention_head_dim", int, source)
    for c in channels:
        if c % groups:
            raise ConfigError(f"{source}: field 'norm_num_groups' = {groups} does not divide block width {c}")
        if c % heads:
            # The official code passes attention_head_dim as the number of heads (diffusers' old naming).
            raise ConfigError(f"{source}: field 'attention_head_dim' = {heads} (the head count) does not divide block width {c}")
    act = cfg.get("act_fn", "silu")
    if act not in ("silu", "swish"):
        raise ConfigError(f"{source}: field 'act_fn' = {act!r}; M3DDM uses 'silu'")
    cross = _field(cfg, "cross_attention_dim", int, source)
    if cross != GLOBAL_CONTEXT_DIM:
        raise ConfigError(f"{source}: field 'cross_attention_dim' = {cross}; the global-frame encoder produces "
                          f"{GLOBAL_CONTEXT_DIM}-wide tokens, so it must be {GLOBAL_CONTEXT_DIM}")
    padding = _field(cfg, "downsample_padding", int, source)
    if padding not in (0, 1):
        raise ConfigError(f"{source}: field 'downsample_padding' = {padding}; only 0 or 1 are defined")
    layers = _field(cfg, "layers_per_block", int, source)
    if layers < 1:
        raise ConfigError(f"{source}: field 'layers_per_block' must be >= 1, got {layers}")
    in_ch = _field(cfg, "in_channels", int, source)
    out_ch = _field(cfg, "out_channels", int, source)
    if in_ch != 9 or out_ch != 4:
        raise ConfigError(f"{source}: fields 'in_channels'/'out_channels' = {in_ch}/{out_ch}; M3DDM takes 9 "
                          "(noisy latent 4 + masked latent 4 + mask 1) and returns 4")
    return UNetConfig(
        in_channels=in_ch,
        out_channels=out_ch,
        block_out_channels=channels,
        down_block_types=down,
        up_block_types=up,
        layers_per_block=layers,
        norm_num_groups=groups,
        norm_eps=_field(cfg, "norm_eps", float, source),
        attention_heads=heads,
        cross_attention_dim=cross,
        flip_sin_to_cos=_field(cfg, "flip_sin_to_cos", bool, source),
        freq_shift=_field(cfg, "freq_shift", float, source),
        downsample_padding=padding,
        mid_block_scale_factor=_field(cfg, "mid_block_scale_factor", float, source),
        center_input_sample=_field(cfg, "center_input_sample", bool, source),
    )


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a config.json; a broken file is a ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
