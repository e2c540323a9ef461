"""Writes the example workflows in workflows/ (ComfyUI UI format v0.4, drag-and-drop ready).

Each workflow is described compactly below (nodes with widget values and their wiring); this script lays them
out and fills in the link tables. Run it after changing a node's inputs: `python scripts/build_workflows.py`.
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "workflows"
CLIP = "m3ddm_demo_clip.mp4"
MODEL = "M3DDM-Video-Outpainting"
VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
SAMPLING = ["pndm", 50, 2.0, 4.0, 0, "fixed", 24.0, False]  # scheduler, steps, s1, s2, seed, control, fps, low_vram

# node type -> (input sockets in order, output types)
SOCKETS = {
    "LoadVideo": ([], ["VIDEO"]),
    "GetVideoComponents": ([("video", "VIDEO")], ["IMAGE", "AUDIO", "FLOAT"]),
    "ImageFromBatch": ([("image", "IMAGE")], ["IMAGE"]),
    "VAELoader": ([], ["VAE"]),
    "M3DDM_LoadModel": ([], ["M3DDM_MODEL"]),
    "M3DDM_OutpaintCanvas": ([("images", "IMAGE")], ["M3DDM_CANVAS", "IMAGE", "MASK", "STRING", "STRING"]),
    "M3DDM_EncodeGlobalFrames": ([("vae", "VAE"), ("canvas", "M3DDM_CANVAS"), ("m3ddm_model", "M3DDM_MODEL")],
                                 ["M3DDM_GLOBAL"]),
    "M3DDM_SampleClip": ([("m3ddm_model", "M3DDM_MODEL"), ("vae", "VAE"), ("canvas", "M3DDM_CANVAS"),
                          ("global_frames", "M3DDM_GLOBAL"), ("guide", "LATENT")], ["LATENT", "IMAGE"]),
    "M3DDM_CoarseToFine": ([("m3ddm_model", "M3DDM_MODEL"), ("vae", "VAE"), ("canvas", "M3DDM_CANVAS"),
                            ("global_frames", "M3DDM_GLOBAL")], ["IMAGE", "LATENT"]),
    "M3DDM_Composite": ([("images", "IMAGE"), ("generated", "IMAGE"), ("canvas", "M3DDM_CANVAS")], ["IMAGE"]),
    "UpscaleModelLoader": ([], ["UPSCALE_MODEL"]),
    "ImageUpscaleWithModel": ([("upscale_model", "UPSCALE_MODEL"), ("image", "IMAGE")], ["IMAGE"]),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO")], ["VIDEO"]),
    "SaveVideo": ([("video", "VIDEO")], []),
    "M3DDM_OutpaintVideo": ([("video", "VIDEO"), ("m3ddm_model", "M3DDM_MODEL"), ("vae", "VAE"),
                             ("upscale_model", "UPSCALE_MODEL")], ["VIDEO"]),
    "PreviewImage": ([("images", "IMAGE")], []),
    "M3DDM_Compare": ([("images", "IMAGE"), ("outpainted", "IMAGE"), ("canvas", "M3DDM_CANVAS")], ["IMAGE"]),
    "M3DDM_KeyframePreview": ([("m3ddm_model", "M3DDM_MODEL"), ("vae", "VAE"), ("canvas", "M3DDM_CANVAS")],
                              ["IMAGE", "STRING", "M3DDM_KEYFRAMES", "STRING"]),
    "M3DDM_Continue": ([("keyframes", "M3DDM_KEYFRAMES"), ("m3ddm_model", "M3DDM_MODEL"), ("vae", "VAE"),
                        ("edited", "IMAGE")], ["IMAGE", "LATENT"]),
    "M3DDM_QualityCheck": ([("images", "IMAGE"), ("canvas", "M3DDM_CANVAS"), ("video", "VIDEO")],
                           ["STRING", "STRING", "IMAGE"]),
}
OUTPUT_NAMES = {"GetVideoComponents": ["images", "audio", "fps"], "M3DDM_OutpaintCanvas": ["canvas", "preview", "mask", "cuts", "setups"],
                "M3DDM_SampleClip": ["latent", "generated"], "M3DDM_CoarseToFine": ["generated", "latent"],
                "M3DDM_KeyframePreview": ["key_frames", "frame_numbers", "keyframes", "shots"],
                "M3DDM_Continue": ["generated", "latent"], "M3DDM_QualityCheck": ["report", "report_json", "plot"]}
WIDGET_TYPES = {"fps": "FLOAT"}  # widgets that are fed by a link in these workflows


# Layout. A node's "pos" is (column, band): columns are 360 canvas units apart; band 0 (the inputs and loaders,
# top left) and band 1 (sampling and outputs, below it), where nodes of one column stack in the order listed.
# Heights are those the frontends draw the nodes at (their widgets' height; the title bar of 30 is above pos): the
# saved size is what the node gets, so the saved view below frames the whole graph.
COLUMN, GAP, TITLE = 360, 40, 30
WIDTH = 320
HEIGHTS = {"LoadVideo": 260, "M3DDM_OutpaintCanvas": 450, "M3DDM_CoarseToFine": 382, "M3DDM_OutpaintVideo": 718,
           "M3DDM_KeyframePreview": 382, "M3DDM_SampleClip": 330, "SaveVideo": 106, "M3DDM_QualityCheck": 122,
           "M3DDM_Compare": 122}
# The saved view (extra.ds): the graph's bounds fitted into this part of a 1600x1000 window (x0, y0, x1, y1 in
# screen pixels): right of the side bar; below the tabs, the breadcrumb and the Run bar (and 1.32.9's 40-px banner
# above them); left of the minimap and zoom controls in the bottom right corner. tests/test_frontend.py checks that
# every node is in view, uncovered, when the workflow is loaded at 1600x1000.
VIEW = (80, 145, 1320, 930)


def layout(spec: list[dict], sizes: dict) -> dict:
    """Node id -> [x, y] from each node's (column, band) and the heights of the nodes above it."""
    pos, bottom = {}, {}
    band_top = [40, None]
    for band in (0, 1):
        if band == 1:
            band_top[1] = max(bottom.values()) + GAP + TITLE
            bottom = {}
        for n in spec:
            col, b = n["pos"]
            if b != band:
                continue
            y = bottom.get(col, band_top[band] - GAP - TITLE) + GAP + TITLE
            pos[n["id"]] = [40 + COLUMN * col, y]
            bottom[col] = y + sizes[n["id"]][1]
    return pos


def view(nodes: list[dict]) -> dict:
    """extra.ds: the scale and offset (screen = (graph + offset) * scale) that show all of the nodes in VIEW."""
    x0 = min(n["pos"][0] for n in nodes)
    y0 = min(n["pos"][1] for n in nodes) - TITLE
    x1 = max(n["pos"][0] + n["size"][0] for n in nodes)
    y1 = max(n["pos"][1] + n["size"][1] for n in nodes)
    vx0, vy0, vx1, vy1 = VIEW
    scale = min(1.0, (vx1 - vx0) / (x1 - x0), (vy1 - vy0) / (y1 - y0))
    scale = int(scale * 100) / 100  # round down: two decimals, as the zoom control shows it
    cx, cy = (vx0 + vx1) / 2 / scale - (x0 + x1) / 2, (vy0 + vy1) / 2 / scale - (y0 + y1) / 2
    return {"scale": scale, "offset": [round(cx, 1), round(cy, 1)]}


def build(spec: list[dict], note: str, note_pos: tuple, note_size: tuple) -> dict:
    nodes, links = [], []
    by_id = {n["id"]: n for n in spec}
    outputs = {n["id"]: [{"name": (OUTPUT_NAMES.get(n["type"]) or [t] * 9)[i], "type": t, "links": [], "slot_index": i}
                         for i, t in enumerate(SOCKETS[n["type"]][1])] for n in spec}
    note_spec = {"id": 100, "type": "Note", "pos": note_pos}
    sizes = {n["id"]: list(n.get("size", (WIDTH, HEIGHTS.get(n["type"], 120)))) for n in spec}
    sizes[100] = list(note_size)
    positions = layout([*spec, note_spec], sizes)
    for order, n in enumerate(spec):
        inputs = []
        for name, kind in SOCKETS[n["type"]][0]:
            inputs.append({"name": name, "type": kind, "link": None})
        for name, (src, slot) in n.get("links", {}).items():
            link_id = len(links) + 1
            kind = SOCKETS[by_id[src]["type"]][1][slot]
            entry = next((i for i in inputs if i["name"] == name), None)
            if entry is None:  # a widget converted to an input
                entry = {"name": name, "type": WIDGET_TYPES.get(name, kind), "widget": {"name": name}, "link": None}
                inputs.append(entry)
            entry["link"] = link_id
            outputs[src][slot]["links"].append(link_id)
            links.append([link_id, src, slot, n["id"], inputs.index(entry), kind])
        node = {"id": n["id"], "type": n["type"], "pos": positions[n["id"]], "size": sizes[n["id"]],
                "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs[n["id"]],
                "properties": {"Node name for S&R": n["type"]}, "widgets_values": n.get("widgets", [])}
        if "title" in n:
            node["title"] = n["title"]
        nodes.append(node)
    nodes.append({"id": 100, "type": "Note", "pos": positions[100], "size": sizes[100], "flags": {},
                  "order": len(spec), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [note]})
    return {"last_node_id": 100, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": view(nodes)}, "version": 0.4}


COMMON = [
    {"id": 1, "type": "LoadVideo", "title": "Load Video", "pos": (0, 0), "widgets": [CLIP, "image"]},
    {"id": 2, "type": "GetVideoComponents", "title": "Get Video Components", "pos": (1, 0), "links": {"video": (1, 0)}},
    {"id": 3, "type": "M3DDM_LoadModel", "title": "Load M3DDM Model", "pos": (1, 0), "widgets": [MODEL, "auto", "auto"]},
    {"id": 4, "type": "VAELoader", "title": "Load VAE", "pos": (1, 0), "widgets": [VAE]},
]


def canvas(node_id, src, ratio, pos, shots="none"):
    return {"id": node_id, "type": "M3DDM_OutpaintCanvas", "title": "M3DDM Outpaint Canvas", "pos": pos,
            "links": {"images": src},
            "widgets": ["aspect ratio", ratio, 1920, 1080, 0.0, 0.0, 0.0, 0.0, "official", shots, "", "auto", 256, "auto"]}


SHORT = COMMON + [
    {"id": 5, "type": "ImageFromBatch", "title": "First 16 frames", "pos": (2, 0), "links": {"image": (2, 0)},
     "widgets": [0, 16]},
    canvas(6, (5, 0), "9:16", (2, 0)),
    {"id": 7, "type": "M3DDM_EncodeGlobalFrames", "title": "M3DDM Encode Global Frames", "pos": (3, 0),
     "links": {"vae": (4, 0), "canvas": (6, 0), "m3ddm_model": (3, 0)}},
    {"id": 8, "type": "M3DDM_SampleClip", "title": "M3DDM Sample Clip", "pos": (0, 1),
     "links": {"m3ddm_model": (3, 0), "vae": (4, 0), "canvas": (6, 0), "global_frames": (7, 0), "fps": (2, 2)},
     "widgets": ["0-15", *SAMPLING]},
    {"id": 9, "type": "M3DDM_Composite", "title": "M3DDM Composite", "pos": (1, 1),
     "links": {"images": (5, 0), "generated": (8, 1), "canvas": (6, 0)}, "widgets": [8]},
    {"id": 10, "type": "CreateVideo", "title": "Create Video", "pos": (2, 1), "links": {"images": (9, 0), "fps": (2, 2)},
     "widgets": [24.0]},
    {"id": 11, "type": "SaveVideo", "title": "Save Video", "pos": (3, 1), "links": {"video": (10, 0)},
     "widgets": ["m3ddm/short_clip_9x16", "auto", "auto"]},
]

COARSE_TO_FINE = {"id": 6, "type": "M3DDM_CoarseToFine", "title": "M3DDM Coarse-to-Fine Outpaint", "pos": (3, 0),
                  "links": {"m3ddm_model": (3, 0), "vae": (4, 0), "canvas": (5, 0), "fps": (2, 2)},
                  "widgets": [*SAMPLING, "auto", "fixed", "canvas", ""]}


def composite_and_save(generated: tuple, col: int, prefix: str) -> list[dict]:
    """Composite the whole video at native resolution and save it as mp4 with the source audio."""
    return [
        {"id": 7, "type": "M3DDM_Composite", "title": "M3DDM Composite", "pos": (col, 1),
         "links": {"images": (2, 0), "generated": generated, "canvas": (5, 0)}, "widgets": [8]},
        {"id": 8, "type": "CreateVideo", "title": "Create Video", "pos": (col + 1, 1),
         "links": {"images": (7, 0), "audio": (2, 1), "fps": (2, 2)}, "widgets": [24.0]},
        {"id": 9, "type": "SaveVideo", "title": "Save Video", "pos": (col + 2, 1), "links": {"video": (8, 0)},
         "widgets": [prefix, "auto", "auto"]},
    ]


LONG = COMMON + [
    canvas(5, (2, 0), "9:16", (2, 0), shots="detect"), COARSE_TO_FINE, *composite_and_save((6, 0), 1, "m3ddm/outpaint"),
    {"id": 10, "type": "M3DDM_Compare", "title": "M3DDM Compare", "pos": (1, 1),
     "links": {"images": (2, 0), "outpainted": (7, 0), "canvas": (5, 0)}, "widgets": ["auto", 16]},
    {"id": 11, "type": "CreateVideo", "title": "Create Video (comparison)", "pos": (2, 1),
     "links": {"images": (10, 0), "audio": (2, 1), "fps": (2, 2)}, "widgets": [24.0]},
    {"id": 12, "type": "SaveVideo", "title": "Save Video (comparison)", "pos": (3, 1), "links": {"video": (11, 0)},
     "widgets": ["m3ddm/outpaint_comparison", "auto", "auto"]},
]

UPSCALE = COMMON + [
    canvas(5, (2, 0), "9:16", (2, 0)),
    COARSE_TO_FINE,
    {"id": 10, "type": "UpscaleModelLoader", "title": "Load Upscale Model", "pos": (3, 0),
     "widgets": ["RealESRGAN_x4plus.safetensors"]},
    {"id": 11, "type": "ImageUpscaleWithModel", "title": "Upscale Image (using Model)", "pos": (0, 1),
     "links": {"upscale_model": (10, 0), "image": (6, 0)}},
    *composite_and_save((11, 0), 1, "m3ddm/outpaint_upscaled"),
]

STREAMING = [
    COMMON[0], COMMON[2], COMMON[3],
    {"id": 5, "type": "M3DDM_OutpaintVideo", "title": "M3DDM Outpaint Video", "pos": (2, 0),
     "links": {"video": (1, 0), "m3ddm_model": (3, 0), "vae": (4, 0)},
     "widgets": ["aspect ratio", "9:16", 1920, 1080, 0.0, 0.0, 0.0, 0.0, "official",
                 *[v for i, v in enumerate(SAMPLING) if i != 6], "auto", "fixed", 8, 0, 0, "detect", "", "auto", 256, "auto"]},
    {"id": 6, "type": "SaveVideo", "title": "Save Video", "pos": (3, 0), "links": {"video": (5, 0)},
     "widgets": ["m3ddm/outpaint_streamed", "auto", "auto"]},
]

KEYFRAMES = COMMON + [
    canvas(5, (2, 0), "9:16", (2, 0), shots="detect"),
    {"id": 6, "type": "M3DDM_KeyframePreview", "title": "M3DDM Keyframe Preview", "pos": (3, 0),
     "links": {"m3ddm_model": (3, 0), "vae": (4, 0), "canvas": (5, 0), "fps": (2, 2)},
     "widgets": [*SAMPLING, "auto", "fixed", 8, ""]},
    {"id": 10, "type": "PreviewImage", "title": "Preview Image (key frames: judge, then continue)", "pos": (3, 0),
     "size": (400, 120),
     "links": {"images": (6, 0)}},
    {"id": 11, "type": "M3DDM_Continue", "title": "M3DDM Continue", "pos": (0, 1),
     "links": {"keyframes": (6, 2), "m3ddm_model": (3, 0), "vae": (4, 0)}, "widgets": [False]},
    *composite_and_save((11, 0), 1, "m3ddm/outpaint_from_keyframes"),
    {"id": 12, "type": "M3DDM_QualityCheck", "title": "M3DDM Quality Check", "pos": (2, 1),
     "links": {"images": (7, 0), "canvas": (5, 0)}, "widgets": ["auto", "fixed"]},
    {"id": 13, "type": "PreviewImage", "title": "Preview Image (quality plot)", "pos": (3, 1),
     "links": {"images": (12, 2)}},
]

WORKFLOWS = {
    "m3ddm_short_clip_16x9_to_9x16.json": (SHORT, "Short clip, 16:9 -> 9:16: the first 16 frames outpainted as one "
                                          "M3DDM clip, then composited at native resolution."),
    "m3ddm_long_video_coarse_to_fine.json": (LONG, "Long video: M3DDM's coarse-to-fine schedule (key frames first, "
                                             "then the frames between), each shot of an edited video on its own (the "
                                             "canvas detects the cuts; its preview shows both sides of each), "
                                             "composited at native resolution and saved as mp4 with the source "
                                             "audio, plus a before/after comparison video (M3DDM Compare)."),
    "m3ddm_upscale_chain.json": (UPSCALE, "Upscaler chain: the 256-px generated canvases go through an upscale "
                                 "model before M3DDM Composite, so the new border is sharper at native resolution."),
    "m3ddm_long_video_streaming.json": (STREAMING, "Long or high-resolution video in bounded memory: M3DDM Outpaint "
                                        "Video reads the file frame by frame, samples coarse-to-fine on latents, and "
                                        "Save Video composites each frame at native resolution while it writes "
                                        "(source audio and fps kept). Shots are detected while the file is read. "
                                        "Set start_frame / frame_count for a part."),
    "m3ddm_keyframes_preview_continue.json": (KEYFRAMES, "Review before the long render. Run 1: M3DDM Keyframe "
                                              "Preview samples only each shot's key frames (the sparsest level, which "
                                              "guides the rest) and shows them; the run stops at M3DDM Continue, "
                                              "whose 'render' is off. Happy? Switch 'render' on and Run again: the "
                                              "rest is sampled (nothing twice), composited and saved. Not happy? Re-roll a shot "
                                              "(shot_seeds, e.g. 2:1234) or repaint a key frame and connect the edited "
                                              "batch to Continue's 'edited' input. M3DDM Quality Check then scores the "
                                              "result (seam, flicker, colour drift) without ground truth."),
}

# Where each workflow's Note goes ((column, band), size): under Load Video, or where band 1 has room.
NOTES = {"m3ddm_long_video_coarse_to_fine.json": ((0, 1), (320, 312))}
NOTE_DEFAULT = ((0, 0), (320, 230))

if __name__ == "__main__":
    for name, (spec, note) in WORKFLOWS.items():
        note_pos, note_size = NOTES.get(name, NOTE_DEFAULT)
        (OUT / name).write_text(json.dumps(build(spec, note, note_pos, note_size), indent=1) + "\n")
        print("wrote", OUT / name)
