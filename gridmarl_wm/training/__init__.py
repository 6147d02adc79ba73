"""Training the world model: the loss terms (:mod:`~gridmarl_wm.training.losses`, a pure function), the
:class:`~gridmarl_wm.training.trainer.Trainer` (schedule, checkpoints, resume, NaN stop, DDP, loss plot) and
the process-group helpers that it and the agents' trainer share (:mod:`~gridmarl_wm.training.distributed`).
"""

from gridmarl_wm.training.losses import LossWeights, world_model_losses
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for

__all__ = ["LossWeights", "TrainConfig", "Trainer", "model_config_for", "world_model_losses"]
