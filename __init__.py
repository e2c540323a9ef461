"""ComfyUI-M3DDM: M3DDM / M3DDM+ video outpainting nodes for ComfyUI (V3 node API)."""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    # Imported on use: importing this package (e.g. by a test runner) needs no ComfyUI.
    from .nodes import comfy_entrypoint as entrypoint

    return await entrypoint()
