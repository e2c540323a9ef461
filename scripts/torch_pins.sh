# The one torch pin of the project (sourced by setup_env.sh and install_comfyui.sh): no requirement may pull
# another torch build. torchaudio because ComfyUI 0.33's comfy/sd.py imports it.
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.1)
