"""PPO for the coin game's players: every learner of a :class:`BatchedGames` at once, shared parameters.

One trainer serves three set-ups through the batched-env interface alone: independent PPO for every
player (self-play, shared parameters, the player index as an optional input), MAPPO (the same with a
centralised critic on ``state()``), and one ego against any opponent the env was built with.

Data-parallel training (``torchrun``): each process steps its own generator groups of games; every process
draws the same minibatch permutation of the *global* rollout and computes its part of each minibatch's
loss divided by the global minibatch size; summing the gradients over processes (one all-reduce) then
gives exactly one process's gradient on the whole rollout, and advantage normalisation uses global
statistics. So a run with several processes takes the same steps as one process with the same groups.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from gridmarl_wm.agents.batched import BatchedGames
from gridmarl_wm.agents.checkpoint import read_policy_file, save_policy_file
from gridmarl_wm.agents.losses import gae, next_pickup_cells, ppo_terms
from gridmarl_wm.agents.policy import ActorCritic, PolicyConfig, PolicyOutput, sample_actions
from gridmarl_wm.io import plain
from gridmarl_wm.model.checkpoint import game_to_dict
from gridmarl_wm.training.distributed import rank_and_world

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (so autocast to it is faster)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return device.type == "cpu" and any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


class TrainingDiverged(RuntimeError):
    """A loss stopped being finite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class PPOConfig:
    """PPO's hyper-parameters.

    Attributes:
        total_steps: game steps to train for, over all games of all processes (a step of one game counts
            once, whatever the number of players).
        rollout_steps: steps per game per rollout (a rollout holds rollout_steps × games × learners
            transitions).
        epochs: passes over each rollout.
        minibatch_size: transitions per gradient step (the last minibatch of a pass may be smaller).
        lr, lr_final: Adam's learning rate, annealed linearly from ``lr`` to ``lr_final`` over the run.
        gamma, gae_lambda: discount and GAE lambda.
        clip: PPO's ratio clip; value_clip: the value's clip (None: unclipped).
        value_coef, entropy_coef: weights of the value loss and the entropy bonus.
        moa_coef, goal_coef: weights of the opponent-modelling losses (when the policy has those heads).
        max_grad_norm: gradient-norm clip.
        normalize_advantages: standardise advantages over the whole rollout.
        bootstrap_truncation: bootstrap a truncated episode from V(its last observation) (False treats the
            time limit as the end of the game: kept only to measure what that costs).
        precision: the network's arithmetic: ``"fp32"``, ``"bf16"`` (bfloat16 autocast of the network's
            matrix products, float32 weights, optimiser and losses) or ``"auto"`` (bf16 where the device
            computes it natively: a GPU that supports it, or a CPU with AVX512-BF16 or AMX; fp32 elsewhere,
            where emulated bf16 would be slower). The same run on machines that choose differently takes
            slightly different steps.
        seed: the network's initialisation, the minibatch order and the action draws.
        log_every: iterations between metric lines; checkpoint_every: between checkpoints.
        time_budget: stop after this many seconds of training (None: no limit).
    """

    total_steps: int = 20_000_000
    rollout_steps: int = 32
    epochs: int = 2
    minibatch_size: int = 8192
    lr: float = 3e-3
    lr_final: float = 0.0
    gamma: float = 0.95
    gae_lambda: float = 0.9
    clip: float = 0.2
    value_clip: float | None = None
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    moa_coef: float = 1.0
    goal_coef: float = 1.0
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    bootstrap_truncation: bool = True
    precision: str = "auto"
    seed: int = 0
    log_every: int = 5
    checkpoint_every: int = 50
    time_budget: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "total_steps",
            "rollout_steps",
            "epochs",
            "minibatch_size",
            "log_every",
            "checkpoint_every",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gamma and gae_lambda must lie in [0, 1], got {self.gamma}, {self.gae_lambda}")
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")


def _all_sum(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(x)
    return x


class PPOTrainer:
    """Trains an :class:`ActorCritic` on a :class:`BatchedGames`; writes ``out_dir/policy.pt`` and
    ``metrics.jsonl``.

    Args:
        env: the batched games (this process's groups).
        policy_cfg: the network.
        cfg: PPO's settings.
        out_dir: where the checkpoint and metrics go.
        meta: plain data stored in the checkpoint beside the configs (the game, how ``env`` was made), so
            that a run can be resumed and a policy loaded without guessing.
    """

    def __init__(
        self,
        env: BatchedGames,
        policy_cfg: PolicyConfig,
        cfg: PPOConfig,
        out_dir: str | Path,
        meta: dict[str, Any] | None = None,
        device: str = "cpu",
    ) -> None:
        self.env, self.cfg, self.policy_cfg = env, cfg, policy_cfg
        self.device = torch.device(device)
        self.out_dir = Path(out_dir)
        self.meta = meta or {}
        self.rank, self.world = rank_and_world()
        game = env.config
        if policy_cfg.obs_shape != game.obs_shape or policy_cfg.n_agents != game.n_agents:
            raise ValueError(
                f"the policy is for observations {policy_cfg.obs_shape} and {policy_cfg.n_agents} players; "
                f"the games have {game.obs_shape} and {game.n_agents}"
            )
        if (policy_cfg.moa or policy_cfg.goal) and game.n_agents < 2:
            raise ValueError("opponent modelling needs at least one other player")
        torch.manual_seed(cfg.seed)
        self.net = ActorCritic(policy_cfg).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16(self.device))
        self.action_rngs = {g: np.random.default_rng([cfg.seed, 7919, g]) for g in env.group_ids}
        self.L = len(env.learners)
        self.N = env.num_envs
        self.N_global = self.N * self.world
        groups = env.group_ids
        if list(groups) != list(range(groups[0], groups[0] + len(groups))):
            raise ValueError(f"a process must run consecutive groups, got {groups}")
        self.env_offset = groups[0] * env.envs_per_group  # this process's first game in the global batch
        self.steps_per_iter = cfg.rollout_steps * self.N_global
        self.iterations = math.ceil(cfg.total_steps / self.steps_per_iter)
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0
        self.player = torch.as_tensor(np.tile(np.array(env.learners), self.N), device=self.device)  # (N * L,)
        others = [[j for j in range(game.n_agents) if j != i] for i in env.learners]
        self.others_of = torch.as_tensor(others)  # (L, n - 1)
        self.hist: np.ndarray | None = None
        self.episode = _EpisodeStats(self.N, self.L, game.n_agents)

    def _forward(self, x: torch.Tensor, player: torch.Tensor, state: torch.Tensor | None) -> PolicyOutput:
        """The network on a batch, in the run's precision; outputs always float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x, player, state)
        return PolicyOutput(*(None if t is None else t.float() for t in out))

    # ------------------------------------------------------------------ observation history
    def _start(self) -> None:
        obs = self.env.reset()
        k = self.policy_cfg.history
        self.hist = np.zeros((self.N, self.L, k, *obs.shape[2:]), np.float32)
        self.hist[:, :, -1] = obs

    def _push(self, hist: np.ndarray, obs: np.ndarray) -> np.ndarray:
        if hist.shape[2] == 1:
            return obs[:, :, None].copy()
        return np.concatenate([hist[:, :, 1:], obs[:, :, None]], axis=2)

    def _inputs(self, hist: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(hist.reshape(self.N * self.L, -1)).to(self.device)

    def _states(self, state: np.ndarray) -> torch.Tensor:
        """(N, S, H, W) -> (N * L, S * H * W): the global state once per learner."""
        s = torch.from_numpy(state.reshape(self.N, 1, -1)).to(self.device)
        return s.expand(self.N, self.L, s.shape[-1]).reshape(self.N * self.L, -1)

    def _uniforms(self) -> np.ndarray:
        n = self.env.envs_per_group
        return np.concatenate([self.action_rngs[g].random(n * self.L) for g in self.env.group_ids])

    # ------------------------------------------------------------------ rollout
    @torch.no_grad()
    def rollout(self) -> dict[str, torch.Tensor]:
        """Play ``rollout_steps`` steps of every game; returns the rollout's tensors, time-major."""
        cfg, env = self.cfg, self.env
        if self.hist is None:
            self._start()
        T, B = cfg.rollout_steps, self.N * self.L
        central = self.policy_cfg.central_critic
        xs, acts, logps, values, rewards, dones, others = [], [], [], [], [], [], []
        states, positions, picked = [], [], []
        for _ in range(T):
            x = self._inputs(self.hist)
            s = self._states(env.state()) if central else None
            out = self._forward(x, self.player, s)
            a = sample_actions(out.logits.cpu(), self._uniforms())
            a_t = torch.from_numpy(a).to(self.device)
            logps.append(torch.log_softmax(out.logits, -1).gather(1, a_t[:, None]).squeeze(1))
            res = env.step(a.reshape(self.N, self.L))
            r = torch.from_numpy(res.rewards.reshape(B).astype(np.float32)).to(self.device)
            done = torch.from_numpy(np.repeat(res.truncated, self.L)).to(self.device)
            self.episode.add(res)
            if res.final_obs is not None and cfg.bootstrap_truncation:
                final_hist = self._push(self.hist, res.final_obs)
                fs = self._states(res.final_state) if central else None
                v_final = self._forward(self._inputs(final_hist), self.player, fs).value
                r = r + cfg.gamma * v_final * done.float()
            xs.append(x)
            acts.append(a_t)
            values.append(out.value)
            rewards.append(r)
            dones.append(done)
            others.append(torch.from_numpy(res.others.reshape(B, -1)).to(self.device))
            if central:
                states.append(s)
            if res.positions is not None:
                positions.append(torch.from_numpy(res.positions))
                picked.append(torch.from_numpy(res.pickups.sum(-1) > 0))
            self.hist = self._push(self.hist, res.obs)
            if res.truncated.any():  # a new episode has no history yet
                rows = np.flatnonzero(res.truncated)
                self.hist[rows, :, :-1] = 0.0
        last_s = self._states(env.state()) if central else None
        last_value = self._forward(self._inputs(self.hist), self.player, last_s).value
        self.env_steps += T * self.N_global
        batch = {
            "x": torch.stack(xs), "action": torch.stack(acts), "logp": torch.stack(logps),
            "value": torch.stack(values), "reward": torch.stack(rewards), "done": torch.stack(dones).float(),
            "others": torch.stack(others), "last_value": last_value,
        }  # fmt: skip
        if central:
            batch["state"] = torch.stack(states)
        if self.policy_cfg.goal is not None:
            if not positions:
                raise ValueError("goal inference needs games that report positions and pick-ups")
            done_games = torch.stack(dones).reshape(T, self.N, self.L)[:, :, 0].cpu()
            cells = next_pickup_cells(
                torch.stack(positions), torch.stack(picked), done_games, self.policy_cfg.goal_cells
            )  # (T, N, A)
            batch["goal"] = cells[:, :, self.others_of].reshape(T, B, -1).to(self.device)  # (T, N*L, n-1)
        return batch

    # ------------------------------------------------------------------ update
    def lr_at(self, iteration: int) -> float:
        frac = min(1.0, iteration / max(1, self.iterations))
        return self.cfg.lr + frac * (self.cfg.lr_final - self.cfg.lr)

    def _aux_terms(self, out, batch: dict[str, torch.Tensor], idx: torch.Tensor, denom: float):
        terms: dict[str, torch.Tensor] = {}
        if out.moa_logits is not None:
            target = batch["others"][idx]  # (b, n-1)
            ce = F.cross_entropy(out.moa_logits.reshape(-1, 5), target.reshape(-1), reduction="none")
            terms["moa"] = ce.reshape(target.shape).mean(1).sum() / denom
            terms["moa_accuracy"] = (out.moa_logits.argmax(-1) == target).float().mean(
                1
            ).sum().detach() / denom
        if out.goal is not None:
            target = batch["goal"][idx]  # (b, n-1)
            known = target >= 0
            none = self.policy_cfg.goal_cells
            if self.policy_cfg.goal == "discrete":
                ce = F.cross_entropy(
                    out.goal.reshape(-1, none + 1), target.clamp(min=0).reshape(-1), reduction="none"
                ).reshape(target.shape)
                terms["goal"] = (ce * known).sum() / (denom * target.shape[1])
            else:
                w = self.env.config.width
                has = (target < none) & known
                tgt = torch.stack([target // w, target % w], -1).float()
                scale = torch.tensor(
                    [max(1, self.env.config.height - 1), max(1, w - 1)],
                    dtype=torch.float32,
                    device=tgt.device,
                )
                err = ((out.goal[..., :2] - tgt / scale) ** 2).sum(-1) * has
                bce = (
                    F.binary_cross_entropy_with_logits(out.goal[..., 2], has.float(), reduction="none")
                    * known
                )
                terms["goal"] = (err + bce).sum() / (denom * target.shape[1])
        return terms

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, net = self.cfg, self.net
        T, B = batch["reward"].shape
        adv, ret = gae(
            batch["reward"], batch["value"], batch["done"], batch["last_value"], cfg.gamma, cfg.gae_lambda
        )
        if cfg.normalize_advantages:
            stats = _all_sum(
                torch.stack([adv.sum(), (adv**2).sum(), torch.tensor(float(adv.numel()), device=adv.device)]),
                self.world,
            )
            mean = stats[0] / stats[2]
            std = (stats[1] / stats[2] - mean**2).clamp(min=0).sqrt()
            adv = (adv - mean) / (std + 1e-8)
        flat = {k: v.reshape(T * B, *v.shape[2:]) for k, v in batch.items() if k != "last_value"}
        flat["adv"], flat["ret"] = adv.reshape(-1), ret.reshape(-1)
        player = self.player.repeat(T)
        total = T * self.N_global * self.L
        mine_lo, mine_hi = self.env_offset, self.env_offset + self.N
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.iteration)
        sums: dict[str, float] = {}
        n_mb = 0
        params = list(net.parameters())
        for _ in range(cfg.epochs):
            perm = torch.randperm(total, generator=self.generator)
            for start in range(0, total, cfg.minibatch_size):
                gidx = perm[start : start + cfg.minibatch_size].to(self.device)
                denom = float(len(gidx))
                if self.world > 1:  # keep the global samples that live in this process
                    t, rest = gidx // (self.N_global * self.L), gidx % (self.N_global * self.L)
                    e, l = rest // self.L, rest % self.L
                    keep = (e >= mine_lo) & (e < mine_hi)
                    idx = t[keep] * B + (e[keep] - mine_lo) * self.L + l[keep]
                else:
                    idx = gidx
                out = self._forward(
                    flat["x"][idx], player[idx], flat["state"][idx] if "state" in flat else None
                )
                logp_all = torch.log_softmax(out.logits, -1)
                new_logp = logp_all.gather(1, flat["action"][idx][:, None]).squeeze(1)
                entropy = -(logp_all.exp() * logp_all).sum(-1)
                terms = ppo_terms(
                    new_logp, flat["logp"][idx], flat["adv"][idx], out.value, flat["value"][idx],
                    flat["ret"][idx], entropy, cfg.clip, cfg.value_clip, denominator=denom,
                )  # fmt: skip
                terms.update(self._aux_terms(out, flat, idx, denom))
                loss = terms["policy"] + cfg.value_coef * terms["value"] - cfg.entropy_coef * terms["entropy"]
                if "moa" in terms:
                    loss = loss + cfg.moa_coef * terms["moa"]
                if "goal" in terms:
                    loss = loss + cfg.goal_coef * terms["goal"]
                self.opt.zero_grad(set_to_none=False)
                loss.backward()
                if self.world > 1:
                    grads = torch.cat([p.grad.reshape(-1) for p in params])
                    dist.all_reduce(grads)
                    offset = 0
                    for p in params:
                        p.grad.copy_(grads[offset : offset + p.numel()].reshape(p.shape))
                        offset += p.numel()
                    loss = _all_sum(loss.detach().clone(), self.world)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss.item()} at iteration {self.iteration}; stopped without saving. "
                        f"The last good checkpoint is {self.checkpoint_path} (if one was written)"
                    )
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_mb += 1
        self.iteration += 1
        out = {k: v / n_mb for k, v in sums.items()}
        if self.world > 1:
            keys = sorted(out)
            vals = _all_sum(torch.tensor([out[k] for k in keys], dtype=torch.float64), self.world)
            out = dict(zip(keys, vals.tolist()))
        return out

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "policy.pt"

    def save(self) -> None:
        """Write ``policy.pt`` atomically (rank 0; the games of every process are gathered into it)."""
        if self.hist is None:
            return
        resume = self._resume_state()
        if self.rank != 0:
            return
        save_policy_file(self.checkpoint_path, {
            "game": game_to_dict(self.env.config),
            "policy_config": self.policy_cfg.as_dict(),
            "policy": self.net.state_dict(),
            "ppo_config": asdict(self.cfg),
            "meta": self.meta,
            "resume": resume,
        })  # fmt: skip

    def _resume_state(self) -> dict[str, Any]:
        """Everything a resume needs, with the per-game parts of every process gathered in global order
        (so a run can be resumed by any number of processes that splits the same groups)."""
        local = {
            "action_rngs": {str(g): json.dumps(r.bit_generator.state) for g, r in self.action_rngs.items()},
            "games": self.env.get_state(),
            "hist": self.hist.copy(),
            "episode": self.episode.get_state(),
        }
        parts = [local]
        if self.world > 1:
            parts = [None] * self.world
            dist.all_gather_object(parts, local)
        merged = {
            "action_rngs": {k: v for p in parts for k, v in p["action_rngs"].items()},
            "games": {k: v for p in parts for k, v in p["games"].items()},
            "hist": np.concatenate([p["hist"] for p in parts]),
            "episode": {
                "ret": np.concatenate([p["episode"]["ret"] for p in parts]),
                "picks": np.concatenate([p["episode"]["picks"] for p in parts]),
                "done": sum(p["episode"]["done"] for p in parts),
            },
        }
        return {
            **_tensors(merged),
            "optimizer": self.opt.state_dict(),
            "generator": self.generator.get_state(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "elapsed": self.elapsed,
        }

    def resume(self, path: str | Path | None = None, games: bool = True) -> None:
        """Continue from a checkpoint of this run: network, optimiser, games, generators and counters.
        Without ``games`` the games are not restored (the caller gives the trainer new ones, as learning in
        imagination does at each outer iteration): they start afresh at the next :meth:`run`.

        Raises:
            ValueError: the checkpoint was made with another game, policy or PPO config.
        """
        path = Path(path or self.checkpoint_path)
        data = read_policy_file(path)
        mine = {"game": game_to_dict(self.env.config), "policy_config": self.policy_cfg.as_dict(),
                "ppo_config": asdict(self.cfg), "meta": self.meta}  # fmt: skip
        for key, value in mine.items():
            if plain(data[key]) != plain(value):
                diff = _diff(plain(data[key]), plain(value))
                raise ValueError(f"{path} was made with another {key} ({diff}); refusing to resume")
        if "resume" not in data:
            raise ValueError(f"{path} holds a policy only, nothing to resume from")
        r = data["resume"]
        self.net.load_state_dict(data["policy"])
        self.opt.load_state_dict(r["optimizer"])
        self.generator.set_state(r["generator"])
        self.iteration, self.env_steps, self.elapsed = (
            int(r["iteration"]),
            int(r["env_steps"]),
            float(r["elapsed"]),
        )
        for g, rng in self.action_rngs.items():
            rng.bit_generator.state = json.loads(r["action_rngs"][str(g)])
        rows = slice(self.env_offset, self.env_offset + self.N)
        if r["hist"].shape[0] != self.N_global:
            raise ValueError(f"{path} holds {r['hist'].shape[0]} games; this run has {self.N_global}")
        if games:
            self.env.set_state(_arrays(r["games"]))
            self.hist = r["hist"][rows].numpy().copy()
        else:
            self.hist = None
        ep = _arrays(r["episode"])
        done = ep["done"] if self.rank == 0 else np.zeros_like(ep["done"])
        self.episode.set_state({"ret": ep["ret"][rows], "picks": ep["picks"][rows], "done": done})

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True, stop_at: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` (or the time budget, or iteration ``stop_at``: a pause that a later
        :meth:`resume` continues exactly); returns the last logged metrics."""
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = None
        if progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.iterations * self.steps_per_iter, initial=self.env_steps, desc="learn",
                       unit="step", unit_scale=True, dynamic_ncols=True)  # fmt: skip
        start, start_elapsed = time.perf_counter(), self.elapsed
        last: dict[str, float] = {}
        window_losses: dict[str, float] = {}
        n_window, t_window, steps_window = 0, time.perf_counter(), self.env_steps
        end = self.iterations if stop_at is None else min(stop_at, self.iterations)
        self.net.train()
        while self.iteration < end:
            if cfg.time_budget is not None and self.elapsed - start_elapsed >= cfg.time_budget:
                break
            losses = self.update(self.rollout())
            self.elapsed = start_elapsed + time.perf_counter() - start
            for k, v in losses.items():
                window_losses[k] = window_losses.get(k, 0.0) + v
            n_window += 1
            if bar is not None:
                bar.update(self.steps_per_iter)
            if self.iteration % cfg.log_every == 0 or self.iteration == end:
                now = time.perf_counter()
                last = {k: v / n_window for k, v in window_losses.items()}
                last.update(self.episode.summary(self.world))
                last.update(
                    iteration=self.iteration, env_steps=self.env_steps, elapsed=self.elapsed,
                    lr=self.lr_at(self.iteration - 1),
                    steps_per_s=(self.env_steps - steps_window) / max(1e-9, now - t_window),
                )  # fmt: skip
                if self.rank == 0:
                    with open(self.out_dir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(last) + "\n")
                    if bar is not None and "episode_return" in last:
                        bar.set_postfix(ret=f"{last['episode_return']:.2f}")
                window_losses, n_window, t_window, steps_window = {}, 0, now, self.env_steps
            if self.iteration % cfg.checkpoint_every == 0:
                self.save()
        self.save()
        if bar is not None:
            bar.close()
        self.net.eval()
        return last


class _EpisodeStats:
    """Per-game running sums, and the finished episodes' totals since the last summary."""

    def __init__(self, N: int, L: int, A: int) -> None:
        self.ret = np.zeros((N, L))
        self.picks = np.zeros((N, A, A))
        self.done = np.zeros(6)  # episodes (games), learner-return sum, coins, own, steals, welfare

    def add(self, res) -> None:
        self.ret += res.rewards
        if res.pickups is not None:
            self.picks += res.pickups
        if res.truncated.any():
            rows = np.flatnonzero(res.truncated)
            picks = self.picks[rows]  # (R, A, A) [game, player, colour]
            own = np.trace(picks, axis1=1, axis2=2)
            coins = picks.sum(axis=(1, 2))
            self.done += [
                len(rows), self.ret[rows].mean(1).sum(), coins.sum(), own.sum(), (coins - own).sum(),
                self.ret[rows].sum(),
            ]  # fmt: skip
            self.ret[rows] = 0.0
            self.picks[rows] = 0.0

    def summary(self, world: int) -> dict[str, float]:
        totals = _all_sum(torch.tensor(self.done), world).numpy()
        self.done[:] = 0.0
        n = totals[0]
        if n == 0:
            return {}
        coins = totals[2]
        return {
            "episodes": int(n), "episode_return": totals[1] / n, "coins": coins / n,
            "own_share": totals[3] / coins if coins else float("nan"), "steals": totals[4] / n,
            "learners_welfare": totals[5] / n,
        }  # fmt: skip

    def get_state(self) -> dict[str, np.ndarray]:
        return {"ret": self.ret, "picks": self.picks, "done": self.done}

    def set_state(self, s: dict[str, np.ndarray]) -> None:
        self.ret, self.picks, self.done = (
            np.asarray(s[k], dtype=np.float64).copy() for k in ("ret", "picks", "done")
        )


def _tensors(obj: Any) -> Any:
    """numpy arrays -> tensors, so the checkpoint loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {k: _tensors(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def _arrays(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    return obj


def _diff(saved: Any, now: Any) -> str:
    if isinstance(saved, dict) and isinstance(now, dict):
        keys = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        return ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in keys)
    return f"saved {saved!r}, now {now!r}"
