"""gridmarl_wm: a learned simulator of the gridmarl coin game.

``WorldModel`` learns P(o_i^{t+1} | o_i^t, a_i^t, a_{-i}^t) with reward, value and opponent heads;
``gridmarl_wm.evaluate`` measures it against the game's exact transition distribution; ``ImaginedEnv``
plays the game inside a model, and ``gridmarl_wm.planning`` plans in it or in the exact rules;
``gridmarl_wm.agents`` trains agents with PPO and ``load_policy`` plays a trained one.
"""

from gridmarl_wm.agents.checkpoint import load_policy
from gridmarl_wm.model import WorldModel, WorldModelConfig
from gridmarl_wm.simulation.imagine import ImaginedEnv, ImaginedParallelEnv, ImaginedSimulator

__all__ = [
    "ImaginedEnv",
    "ImaginedParallelEnv",
    "ImaginedSimulator",
    "WorldModel",
    "WorldModelConfig",
    "load_policy",
]
