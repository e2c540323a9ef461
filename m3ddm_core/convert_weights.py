"""``python -m m3ddm_core.convert_weights``: M3DDM weights to one ``.safetensors`` file (:mod:`.apps.convert_weights`)."""
import sys

from .apps.convert_weights import main

if __name__ == "__main__":
    sys.exit(main())
