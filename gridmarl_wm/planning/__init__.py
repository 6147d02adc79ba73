"""Planners that run unchanged on the exact simulator and on the learned one, and playing real games with
them.

A *simulator* (:mod:`gridmarl_wm.simulation.simulators`: the rules or a world model) is batched and branchable:
``roots``, ``repeat``, ``take``, ``step`` and ``value``; the planners know nothing else of it.

- :mod:`~gridmarl_wm.planning.planners`: :class:`RandomShooting`, :class:`CEM` and :class:`MCTS` take a batch
  of roots and return one ego action per root; :class:`ScriptedEgo` puts a scripted policy behind the same
  interface.
- :mod:`~gridmarl_wm.planning.play`: :func:`play` runs a planner in real games and reports its returns,
  :func:`play_paired` the same games once per simulator, :func:`paired_gap` the model gap between them.
- :mod:`~gridmarl_wm.planning.statistics`: :func:`ci95` (the one 95% interval of every table),
  :func:`t_quantile` and :func:`model_gap`.
"""

from gridmarl_wm.planning.planners import CEM, MCTS, RandomShooting, ScriptedEgo
from gridmarl_wm.planning.play import PlayResult, paired_gap, play, play_paired
from gridmarl_wm.planning.statistics import ci95, model_gap, t_quantile
from gridmarl_wm.simulation.simulators import ExactSimulator, ExactStates, LearnedSimulator

__all__ = [
    "CEM",
    "MCTS",
    "ExactSimulator",
    "ExactStates",
    "LearnedSimulator",
    "PlayResult",
    "RandomShooting",
    "ScriptedEgo",
    "ci95",
    "model_gap",
    "paired_gap",
    "play",
    "play_paired",
    "t_quantile",
]
