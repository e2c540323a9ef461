"""scripts/run_demo.py and scripts/open_ui.py: the main command leaves a model to pick in the UI it installed."""
import sys

from comfy_env import REPO
from m3ddm_core import list_weights, load_model

sys.path.insert(0, str(REPO / "scripts"))
import run_demo  # noqa: E402


def test_the_demo_models_stay_in_the_models_folder_and_nothing_there_is_replaced(tmp_path):
    models = tmp_path / "models"
    written = run_demo.ensure_demo_models(models)
    assert written == ["m3ddm/m3ddm-random-DEMO", "vae_approx/taesd_{encoder,decoder}.safetensors"]
    assert list_weights([models / "m3ddm"]) == ["m3ddm-random-DEMO"]  # what Load M3DDM Model lists
    assert load_model(models / "m3ddm" / "m3ddm-random-DEMO", "fp32").family == "m3ddm"  # and loads strictly
    taesd = models / "vae_approx" / "taesd_decoder.safetensors"
    taesd.write_bytes(b"the user's own TAESD")
    assert run_demo.ensure_demo_models(models) == []  # a second demo writes nothing
    assert taesd.read_bytes() == b"the user's own TAESD"
