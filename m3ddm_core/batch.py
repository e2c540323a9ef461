"""``python -m m3ddm_core.batch``: the headless batch command (:mod:`.apps.batch`; ``--help`` lists its options)."""
import sys

from .apps.batch import main

if __name__ == "__main__":
    sys.exit(main())
