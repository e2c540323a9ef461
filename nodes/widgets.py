"""ComfyUI widgets of the core's settings: default, limits and tooltip from :data:`PARAMETERS`, never restated."""
from __future__ import annotations

from comfy_api.latest import io

from ..m3ddm_core import PARAMETERS

WIDGETS = {bool: io.Boolean, int: io.Int, float: io.Float, str: io.String}


def widget(name: str, note: str = "", **changes):
    """The input ``name`` of :data:`PARAMETERS`: a combo of its options or a widget of its default's type within its
    limits. ``note`` follows its help in the tooltip (what this node adds); ``changes`` replace what it sets."""
    p = PARAMETERS[name]
    given = dict(default=p.default, tooltip=f"{p.help} {note}" if note else p.help)
    if p.options:
        return io.Combo.Input(name, **{**given, "options": list(p.options), **changes})
    limits = {key: v for key, v in (("min", p.low), ("max", p.high), ("step", p.step)) if v is not None}
    return WIDGETS[type(p.default)].Input(name, **{**given, **limits, **changes})


def widgets(*names: str) -> list:
    """:func:`widget` of each of ``names``, in that order (the order of a node's widget values in saved workflows)."""
    return [widget(name) for name in names]
