import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pytest

from gridmarl.config import PRESETS

#: The configs every env test runs on: the default game, partial view, a non-square walled map with
#: 3 players and 2 coins each, and 8x8 with 4 players in partial view.
CONFIGS = dict(PRESETS)


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def preset(request):
    """(registered id, game kwargs) of every registered variant."""
    return request.param, CONFIGS[request.param]
