"""The applications: the batch command and its jobs, Ray scale-out, weight conversion. Built on every layer below;
no ComfyUI node uses them."""
