"""Training losses as pure functions of a model and a batch, returning named terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gridmarl_wm.model import WorldModel


@dataclass
class Batch:
    """B transitions as tensors on the model's device.

    obs, next_obs: (B, 5, h, w) float32; joint: (B, n_agents) own action first; reward_class: (B,) index into
    the model's reward values; reward: (B,) float32; agent: (B,) player index.
    """

    obs: torch.Tensor
    next_obs: torch.Tensor
    joint: torch.Tensor
    reward_class: torch.Tensor
    reward: torch.Tensor
    agent: torch.Tensor


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (0 switches a head off). ``unconstrained`` weighs the next observation's
    NLL without the learned constraints, added while they are on so that the model stays right when they
    are switched off. ``features_alone`` weighs, for the first ``features_alone_until`` of training (a
    fraction of its steps), the next observation's NLL under a mixture decoder's feature components alone
    (with a cell scorer; see ``MixtureDecoder.log_probs``)."""

    reward: float = 1.0
    value: float = 0.1
    opponent: float = 0.1
    aux: float = 1.0
    unconstrained: float = 1.0
    features_alone: float = 0.3
    features_alone_until: float = 0.2


def world_model_losses(
    model: WorldModel,
    batch: Batch,
    weights: LossWeights,
    forward: torch.nn.Module | None = None,
    progress: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Named loss terms and their weighted sum ``total``.

    ``obs_nll``: mean negative log-likelihood (nats) of the next observation (of the observation itself in
    the autoencoder diagnostic), as the model decodes it; ``obs_nll_unconstrained``: the same without its
    learned constraints (only while they are on); ``reward``: cross-entropy over reward values; ``value``: squared error to
    r + gamma * V(o') (V(o') not differentiated); ``opponent``: cross-entropy of the others' actions;
    ``aux``: latent consistency and VQ terms; ``obs_nll_features_alone`` (a mixture decoder with a cell
    scorer, while ``progress``, the fraction of training done, is below ``weights.features_alone_until``).
    ``forward`` runs the forward pass instead of ``model`` (a DistributedDataParallel wrapper of it).
    """
    cfg = model.cfg
    pred = (forward or model)(batch.obs, batch.joint, batch.next_obs, batch.agent)
    target = batch.obs if cfg.variant == "autoencoder" else batch.next_obs
    alone = bool(weights.features_alone) and progress < weights.features_alone_until
    logp, second = model.decode_log_probs(pred, batch.obs, target, features_alone=alone)
    terms = {"obs_nll": -logp.mean()}
    if second is not None:
        terms[
            "obs_nll_features_alone" if cfg.decoder == "mixture" else "obs_nll_unconstrained"
        ] = -second.mean()
    terms["reward"] = F.cross_entropy(pred.reward_logits, batch.reward_class)
    with torch.no_grad():
        v_next = model.value_head(model.obs_summary(batch.next_obs)).squeeze(1)
    terms["value"] = F.mse_loss(pred.value, batch.reward + cfg.gamma * v_next)
    terms["opponent"] = F.cross_entropy(pred.opponent_logits.flatten(0, 1), batch.joint[:, 1:].flatten())
    terms["aux"] = pred.aux_loss
    terms["total"] = (
        terms["obs_nll"]
        + weights.reward * terms["reward"]
        + weights.value * terms["value"]
        + weights.opponent * terms["opponent"]
        + weights.aux * terms["aux"]
        + weights.unconstrained * terms.get("obs_nll_unconstrained", 0.0)
        + weights.features_alone * terms.get("obs_nll_features_alone", 0.0)
    )
    return terms
