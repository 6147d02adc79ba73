"""Modelling the other players:

- :mod:`~gridmarl_wm.opponents.refit`: :func:`fit_observation_heads` refits a world model's opponent and
  value heads to the opponents it will meet, the transition model left as trained;
- :mod:`~gridmarl_wm.opponents.switching`: opponents that change policy: memoryless, recurrent (with an
  inferred goal) and types models, the switch filter :class:`TypeFilter`, and
  :class:`TypeFilterSimulator` to plan with it.
"""

from gridmarl_wm.opponents.refit import fit_observation_heads
from gridmarl_wm.opponents.switching import OpponentNet, TypeFilter, TypeFilterSimulator

__all__ = ["OpponentNet", "TypeFilter", "TypeFilterSimulator", "fit_observation_heads"]
