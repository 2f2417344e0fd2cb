"""`python -m hand_scene_perception.cli`: the same as the `hand-scene` command."""

import sys

from .main import main

sys.exit(main())
