"""Playing the game inside a world model, batched:

- :mod:`~gridmarl_wm.simulation.imagine`: :class:`ImaginedSimulator` (a batch of imagined games stepped
  by a model, compiled or not), and :class:`ImaginedEnv` / :class:`ImaginedParallelEnv`, drop-in
  replacements for the real Gymnasium and PettingZoo envs;
- :mod:`~gridmarl_wm.simulation.simulators`: the simulators planners plan in, learned and exact;
- :mod:`~gridmarl_wm.simulation.allocator`: keeping freed memory for reuse on a CPU (glibc).
"""

from gridmarl_wm.simulation.imagine import ImaginedEnv, ImaginedParallelEnv, ImaginedSimulator
from gridmarl_wm.simulation.simulators import ExactSimulator, LearnedSimulator

__all__ = ["ExactSimulator", "ImaginedEnv", "ImaginedParallelEnv", "ImaginedSimulator", "LearnedSimulator"]
