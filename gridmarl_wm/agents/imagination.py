"""Learning in imagination: collect real play, fit the world model to all of it, train the policy inside
the model, repeat; every real step counted.

One outer iteration of :func:`learn_in_imagination`:

1. the current policy plays ``real_steps_per_iteration`` real game steps as player_0 against the real
   opponents (:class:`~gridmarl_wm.agents.batched.NativeGames`); player_0's transitions join the data;
2. the world model is fitted to all the real data so far (:class:`gridmarl_wm.training.trainer.Trainer`; its config,
   reward classes and learned structure re-derived from the data, weights carried over where they fit);
3. the PPO trainer learns on :class:`~gridmarl_wm.agents.imagined.ImaginedGames`: imagined games started
   from real observations, ``horizon`` steps long, bootstrapped from the value at the horizon, the others'
   actions from the model's opponent head.

The same loop with ``simulator="exact"`` puts the rules (:class:`~gridmarl_wm.simulation.exact_model.ExactModel`) and
the true opponents in place of the learned model: the control that says how much of any shortfall is the
model's. ``simulator="learned-dynamics"`` keeps the learned model but has the true opponents act on the state
each imagined observation shows, in place of its opponent head: between the two, it splits the model's share
into that of its dynamics and that of its opponent model. Real steps (``real_steps`` in ``imagination.jsonl``) count every game step of real play, the data the
model learned from included; imagined steps are counted apart; the evaluation games are neither.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridmarl.config import GridConfig, make_config
from gridmarl.core import GridCore
from gridmarl.opponents import Opponents
from gridmarl_wm.agents.batched import NativeGames, check_opponent
from gridmarl_wm.agents.checkpoint import LoadedPolicy, read_policy_file
from gridmarl_wm.agents.evaluate import policy_returns
from gridmarl_wm.agents.imagined import ImaginedGames
from gridmarl_wm.agents.policy import ActorCritic, PolicyConfig, sample_actions
from gridmarl_wm.agents.ppo import PPOConfig, PPOTrainer, _arrays, _diff, _tensors
from gridmarl_wm.data import FIELDS, Transitions
from gridmarl_wm.io import atomic_write, atomic_write_text, plain
from gridmarl_wm.simulation.imagine import state_from_observation

SIMULATORS = ("learned", "learned-dynamics", "exact")
LEARNED = ("learned", "learned-dynamics")  # the simulators that train a world model


@dataclass(frozen=True)
class ImaginationConfig:
    """The loop's budgets.

    Attributes:
        real_steps: real game steps in all (the budget the comparison with model-free PPO counts).
        real_steps_per_iteration: real game steps collected per outer iteration.
        real_envs: real games played at once.
        model_steps: the world model's optimiser steps per outer iteration.
        model_batch: its batch size.
        imagined_steps_per_iteration: imagined game steps of PPO per outer iteration.
        imagined_envs: imagined games at once.
        horizon: imagined steps from a real start before bootstrapping.
        simulator: ``"learned"`` (the world model, its opponent head playing the others), ``"exact"`` (the
            rules and the true opponents) or ``"learned-dynamics"`` (the world model, the true opponents
            acting on the state each imagined observation shows; memoryless opponents of a two-player
            full-view game, as for ``"exact"``).
        eval_seeds, eval_episodes: the real-env evaluation after every outer iteration.
        seed: of the real games, the model's training and the imagined games.
    """

    real_steps: int = 50_000
    real_steps_per_iteration: int = 5_000
    real_envs: int = 64
    model_steps: int = 600
    model_batch: int = 512
    imagined_steps_per_iteration: int = 200_000
    imagined_envs: int = 1024
    horizon: int = 10
    simulator: str = "learned"
    eval_seeds: int = 5
    eval_episodes: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "real_steps", "real_steps_per_iteration", "real_envs", "model_steps", "model_batch",
            "imagined_steps_per_iteration", "imagined_envs", "horizon", "eval_seeds", "eval_episodes",
        ):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.simulator not in SIMULATORS:
            raise ValueError(f"simulator={self.simulator!r} is unknown; allowed: {list(SIMULATORS)}")

    @property
    def iterations(self) -> int:
        return math.ceil(self.real_steps / self.real_steps_per_iteration)


def collect_policy_play(
    games: NativeGames, act: Any, steps: int, obs: np.ndarray, t: np.ndarray
) -> tuple[Transitions, np.ndarray, np.ndarray]:
    """``steps`` real steps of ``games`` (one learner) with ``act(obs (N, 5, h, w)) -> (N,)`` choosing the
    learner's actions; returns the learner's transitions and the observations and times to go on from."""
    if len(games.learners) != 1:
        raise ValueError("collecting a policy's play needs games with one learner")
    ego = games.learners[0]
    N = games.num_envs
    parts = []
    for _ in range(steps):
        a = np.asarray(act(obs[:, 0]), dtype=np.int64)
        res = games.step(a[:, None])
        nxt = (
            res.obs
            if res.final_obs is None
            else np.where(res.truncated[:, None, None, None, None], res.final_obs, res.obs)
        )
        n_others = res.others.shape[-1]
        parts.append(
            Transitions(
                obs=obs[:, 0].astype(np.uint8), action=a, others=res.others[:, 0],
                reward=res.rewards[:, 0].astype(np.float32), next_obs=nxt[:, 0].astype(np.uint8),
                truncated=res.truncated.copy(), agent=np.full(N, ego, dtype=np.int64), t=t.copy(),
                episode=np.full(N, -1, dtype=np.int64), policy=np.full((N, n_others), -1, dtype=np.int64),
                others_probs=np.full((N, n_others, 5), np.nan, dtype=np.float32),
            )
        )  # fmt: skip
        obs = res.obs
        t = np.where(res.truncated, 0, t + 1)
    return Transitions.concatenate(parts), obs, t


def scripted_tensor_opponent(game: GridConfig, spec: Any, seed: int = 0) -> Any:
    """The true opponent ``spec`` of a two-player full-view game as a callable on the ego's observations
    (B, 5, H, W) -> (B, 1), acting on the state each observation shows (for the exact and the
    learned-dynamics controls)."""
    if spec == "switching" or (isinstance(spec, list | tuple) and "switching" in spec):
        raise ValueError(
            "the exact control plays memoryless opponents on the state an observation shows; 'switching' "
            "opponents carry a policy over time: compare against them with simulator='learned' only"
        )
    core = GridCore(game)
    opponents = Opponents(core, 0, spec)
    rng = np.random.default_rng([seed, 31337])

    def act(obs: torch.Tensor) -> torch.Tensor:
        arr = obs.detach().cpu().numpy()
        state = state_from_observation(game, arr)
        opponents.reset(len(arr), None, rng.random((len(arr), opponents.n_reset_draws)))
        u = rng.random((len(arr), opponents.n_step_draws))
        return torch.as_tensor(opponents.act(state, u), device=obs.device)

    return act


def _actor(net: torch.nn.Module | None, rng: np.random.Generator) -> Any:
    """``act(obs (N, 5, h, w)) -> (N,)``: the policy's sampled actions, or uniform ones before it exists."""

    def act(obs: np.ndarray) -> np.ndarray:
        if net is None:
            return rng.integers(5, size=len(obs))
        x = torch.from_numpy(np.asarray(obs, np.float32)).reshape(len(obs), -1)
        with torch.no_grad():
            logits = net(x, torch.zeros(len(obs), dtype=torch.int64)).logits
        return sample_actions(logits, rng.random(len(obs)))

    return act


STATE_FILE = "imagination_state.pt"
STATE_FORMAT = "gridmarl-imagination-1"


def _save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save({"format": STATE_FORMAT, **state}, f))


def _read_state(path: Path) -> dict[str, Any]:
    from gridmarl_wm.model.checkpoint import read_versioned

    return read_versioned(
        path, STATE_FORMAT, ("settings", "iteration", "data"), "imagination", "saved loop state"
    )


def _warm_start(new: torch.nn.Module, old: torch.nn.Module | None) -> None:
    """Copy ``old``'s weights into ``new`` wherever name and shape agree (a model re-derived from more data
    may have more reward classes or a longer token layout)."""
    if old is None:
        return
    mine = new.state_dict()
    fits = {k: v for k, v in old.state_dict().items() if k in mine and mine[k].shape == v.shape}
    mine.update(fits)
    new.load_state_dict(mine)


def learn_in_imagination(
    out_dir: str | Path,
    game: GridConfig | dict | None = None,
    opponent: Any = "greedy",
    cfg: ImaginationConfig = ImaginationConfig(),
    ppo: PPOConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    simulator: Any = None,
    progress: bool = False,
    resume: bool = False,
    stop_at: int | None = None,
    compile: bool = False,
    **policy: Any,
) -> list[dict[str, Any]]:
    """Run the loop (see the module docstring); writes ``out_dir/policy.pt`` (with PPO's ``metrics.jsonl``),
    ``out_dir/imagination.jsonl`` (a line per outer iteration), ``out_dir/imagination.json`` and, with the
    learned simulator, the model's training runs under ``out_dir/model``. Returns the metric lines.

    After every outer iteration the loop's state (the real data so far, the real games and generators, the
    counters; the world model and the policy are in their own checkpoints) is written atomically to
    ``out_dir/imagination_state.pt``. ``resume=True`` continues an interrupted run from its last finished
    iteration, with the same result as a run that was not interrupted; ``stop_at`` ends this call after
    that many outer iterations in all (a pause that ``resume`` continues).

    Args:
        game: the game (default ``GridMARL-v0``'s); opponent: player_0's opponents, as ``gym.make`` takes
            them. ppo: PPO's settings for the imagined training (``total_steps`` is set by the loop).
        model_overrides: :class:`~gridmarl_wm.WorldModelConfig` fields for the world model; a decoder,
            trunk or fusion left out is :func:`~gridmarl_wm.training.trainer.architecture_defaults`' (the main job's
            model for the direct variant).
        simulator: with ``cfg.simulator == "exact"``, a stand-in for the rules (anything with
            ``WorldModel``'s ``sample``, e.g. a deliberately wrong model), played with the true opponents.
        compile: step the imagined games through ``torch.compile`` (a learned simulator with the mixture
            decoder). The samples are the uncompiled step's up to rounding, so a compiled run can differ
            from an uncompiled one where a draw lies on a boundary; it is not part of the run's settings.
        **policy: :class:`PolicyConfig` fields (history 1: imagined games know one observation).

    Raises:
        ValueError: a bad argument, or ``resume`` of a run made with other settings.
        FileNotFoundError: ``resume`` without a saved state in ``out_dir``.
    """
    from gridmarl_wm.model import WorldModel
    from gridmarl_wm.simulation.exact_model import ExactModel
    from gridmarl_wm.training.trainer import (
        TrainConfig,
        Trainer,
        model_config_for,
        with_architecture_defaults,
    )

    game = make_config(game)
    model_overrides = with_architecture_defaults(model_overrides)
    check_opponent(opponent, game)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if compile and (cfg.simulator not in LEARNED or model_overrides["decoder"] != "mixture"):
        raise ValueError(
            "compile=True steps a learned simulator with the mixture decoder; got simulator="
            f"{cfg.simulator!r}, decoder={model_overrides['decoder']!r}"
        )
    if simulator is not None and cfg.simulator != "exact":
        raise ValueError("a given simulator stands in for the rules: use it with cfg.simulator='exact'")
    if opponent == "self":
        raise ValueError("learning in imagination trains one ego: opponent='self' is not supported")
    if cfg.simulator != "learned":  # the true opponents play in imagination: refuse those it cannot play now
        scripted_tensor_opponent(game, opponent, seed=cfg.seed)
    if policy.get("history", 1) != 1 or policy.get("central_critic") or policy.get("goal"):
        raise ValueError(
            "imagined games give one observation and no global state or positions: use history=1, no "
            "central critic and no goal inference"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ppo = replace(
        ppo or PPOConfig(rollout_steps=cfg.horizon, minibatch_size=4096, checkpoint_every=10**9),
        total_steps=cfg.iterations * cfg.imagined_steps_per_iteration,
        seed=cfg.seed,
    )
    pcfg = PolicyConfig.for_game(game, **policy)
    real = NativeGames(game, cfg.real_envs, opponent, seed=cfg.seed + 1_000_003)
    obs, t = real.reset(), np.zeros(cfg.real_envs, dtype=np.int64)
    act_rng = np.random.default_rng([cfg.seed, 271828])
    data: Transitions | None = None
    model: Any = None
    trainer: PPOTrainer | None = None
    net = None
    lines: list[dict[str, Any]] = []
    real_steps = 0
    state_path = out / STATE_FILE
    settings = plain({"game": asdict(game), "opponent": str(opponent), "imagination": asdict(cfg),
                      "model_overrides": model_overrides, "policy": policy,
                      "simulator": None if simulator is None else type(simulator).__name__})  # fmt: skip
    first, elapsed = 0, 0.0
    if resume:
        saved = _read_state(state_path)
        if saved["settings"] != settings:
            diff = _diff(saved["settings"], settings)
            raise ValueError(f"{state_path} was made with other settings ({diff}); refusing to resume")
        first, real_steps, lines, elapsed = (
            saved["iteration"],
            saved["real_steps"],
            saved["lines"],
            saved["elapsed"],
        )
        data = Transitions(**{f: v.numpy() for f, v in saved["data"].items()})
        real.set_state(_arrays(saved["real_games"]))
        obs, t = saved["obs"].numpy(), saved["t"].numpy()
        act_rng.bit_generator.state = json.loads(saved["act_rng"])
        if cfg.simulator in LEARNED:
            model = WorldModel.load(out / "model" / f"iteration{first - 1}" / "checkpoint.pt")
        net = ActorCritic(pcfg)  # the policy that plays the next real steps (the trainer takes it over)
        net.load_state_dict(read_policy_file(out / "policy.pt")["policy"])
    start = time.perf_counter() - elapsed
    for k in range(first, min(cfg.iterations, stop_at if stop_at is not None else cfg.iterations)):
        # 1. real play with the current policy (uniform before the first update)
        steps = min(cfg.real_steps_per_iteration, cfg.real_steps - real_steps) // cfg.real_envs
        steps = max(1, steps)

        part, obs, t = collect_policy_play(real, _actor(net, act_rng), steps, obs, t)
        data = part if data is None else Transitions.concatenate([data, part])
        real_steps += steps * cfg.real_envs

        # 2. the simulator
        if cfg.simulator in LEARNED:
            previous = model
            with torch.random.fork_rng():  # initial weights from the loop's seed, not the global generator
                torch.manual_seed(cfg.seed + k)
                model = WorldModel(model_config_for(game, data, **model_overrides))
            _warm_start(model, previous)
            train_cfg = TrainConfig(
                steps=cfg.model_steps, batch_size=cfg.model_batch, seed=cfg.seed + k, checkpoint_every=10**9
            )
            Trainer(model, data, game, train_cfg, out / "model" / f"iteration{k}").run(progress=progress)
            model.eval()
            model.game = game
            sim_opponent: Any = "model"
            if cfg.simulator == "learned-dynamics":
                sim_opponent = scripted_tensor_opponent(game, opponent, seed=cfg.seed)
        else:
            model = ExactModel(game) if simulator is None else simulator
            sim_opponent = scripted_tensor_opponent(game, opponent, seed=cfg.seed)

        # 3. the policy in imagination
        starts = data.obs.astype(np.float32)
        env = ImaginedGames(
            model, starts, cfg.imagined_envs, cfg.horizon, sim_opponent, seed=cfg.seed + k, game=game,
            compile=compile,
        )  # fmt: skip
        if trainer is None:
            meta = {"opponent": str(opponent), "imagination": asdict(cfg)}
            with torch.random.fork_rng():  # initial weights from the loop's seed, not the global generator
                torch.manual_seed(cfg.seed)
                trainer = PPOTrainer(env, pcfg, ppo, out, meta=meta)
            if k > 0:  # resumed: the policy, its optimiser and PPO's generators and counters
                trainer.resume(games=False)
            net = trainer.net
        else:
            trainer.env, trainer.hist = env, None
        trainer.run(progress=progress, stop_at=math.ceil((k + 1) * trainer.iterations / cfg.iterations))

        # 4. how it plays for real
        loaded = LoadedPolicy(net, game, deterministic=False, seed=cfg.seed)
        result = policy_returns(
            loaded, opponent, seeds=range(cfg.eval_seeds), episodes=cfg.eval_episodes, game=game
        )
        net.train()
        line = {
            "iteration": k, "real_steps": real_steps, "imagined_steps": trainer.env_steps,
            "return_mean": result.mean, "return_ci95": result.ci95, "seconds": time.perf_counter() - start,
            "simulator": cfg.simulator,
        }  # fmt: skip
        lines.append(line)
        with open(out / "imagination.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        _save_state(state_path, {
            "settings": settings, "iteration": k + 1, "real_steps": real_steps, "lines": lines,
            "elapsed": time.perf_counter() - start,
            "data": {f: torch.from_numpy(np.ascontiguousarray(getattr(data, f))) for f in FIELDS},
            "real_games": _tensors(real.get_state()),
            "obs": torch.from_numpy(np.array(obs)), "t": torch.from_numpy(np.array(t)),
            "act_rng": json.dumps(act_rng.bit_generator.state),
        })  # fmt: skip
    if stop_at is not None and stop_at < cfg.iterations:
        return lines
    atomic_write_text(out / "imagination.json", json.dumps({"config": asdict(cfg), "lines": lines}, indent=2))
    return lines
