"""The world model and its parts: what learns P(o_i^{t+1} | o_i^t, a_i^t, a_{-i}^t).

- :mod:`~gridmarl_wm.model.world_model`: :class:`WorldModel` (trunks, the pointer decoder, the reward,
  value and opponent heads) and :class:`WorldModelConfig`;
- :mod:`~gridmarl_wm.model.mixture_decoder`: the five-pass mixture decoder and its MLP and local trunks;
- :mod:`~gridmarl_wm.model.tokens`: the pointer decoder's token sequences and the structure learned from
  data;
- :mod:`~gridmarl_wm.model.sampling`: categorical draws from given uniform numbers.

Nothing here imports training, simulation, planning or the command line.
"""

from gridmarl_wm.model.world_model import FUSIONS, VARIANTS, WorldModel, WorldModelConfig

__all__ = ["FUSIONS", "VARIANTS", "WorldModel", "WorldModelConfig"]
