"""The learned model as a simulator: a batched tensor simulator, a Gymnasium env and a PettingZoo env.

:class:`ImaginedSimulator` steps a batch of imagined observations with tensors in and out on the model's
device (no host synchronisation inside a step); planners use it. :class:`ImaginedEnv` is a drop-in
replacement for ``gym.make("GridMARL-v0")`` and :class:`ImaginedParallelEnv` for
``gridmarl.parallel_env()`` (two players, full view), both driven by a model's ``sample``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from gridmarl import GridConfig, GridCore, ResetNeeded, State, make_config
from gridmarl.config import N_ACTIONS, check_action
from gridmarl.frames import RENDER_FPS, RENDER_MODES, FrameRenderer
from gridmarl.gym_env import observation_space
from gridmarl.opponents import BUILTIN_POLICIES, DEFAULT_SWITCH_POOL, Opponents
from gridmarl_wm.model.sampling import categorical, weights

# An opponent of the batched simulator: the ego's observations (B, 5, h, w) -> others' actions (B, n - 1).
TensorOpponent = Callable[[torch.Tensor], torch.Tensor]
# The name an imagined env reports for opponents played by the model's opponent head; its policy id comes
# after the built-in policies' ids.
MODEL_POLICY = "model"


def _is_exact(model: Any) -> bool:
    """Whether ``model`` is the exact stand-in (the rules themselves)."""
    from gridmarl_wm.simulation.exact_model import ExactModel  # here: exact_model imports this module

    return isinstance(model, ExactModel)


def _start_observations(model: Any, ego: int, game: GridConfig) -> np.ndarray | None:
    """The first observations stored with ``model`` at training (``start_obs``) that a plain reset of the
    ego's imagined game draws from: (N, 5, h, w) uint8, or None when the model carries none.

    They are the ego's own (``start_agent == ego``) where there are any; where there are none (data
    collected from another player's view only), every stored one is used, whichever player saw it. That
    fallback is exact, not an approximation: the game's reset puts the players, then the coins colour by
    colour, on uniformly random free cells, so the reset state's distribution does not change when players
    are renumbered (with their coins), and an observation is the same function of the state for every
    observer (self, others, own coins, others' coins, walls). Each player's first observation therefore has
    the same distribution. It would not hold for a reset that treats players differently (fixed corners);
    a model of such a game must store the ego's own start observations.
    """
    starts = getattr(model, "start_obs", None)
    if starts is None or len(starts) == 0:
        return None
    starts = np.asarray(starts)
    if starts.shape[1:] != game.obs_shape:
        raise ValueError(
            f"the model's start observations have shape {starts.shape[1:]}, not {game.obs_shape}"
        )
    agents = np.asarray(getattr(model, "start_agent", np.full(len(starts), ego)))
    mine = agents == ego
    return starts[mine] if mine.any() else starts


def game_of(model: Any, game: GridConfig | dict | None = None) -> GridConfig:
    """The game a model simulates: ``game`` if given, else the one it was trained or loaded with."""
    if game is not None:
        return make_config(game)
    found = getattr(model, "game", None)
    if found is None:
        raise ValueError(
            "this model does not say which game it simulates (models from WorldModel.load or training "
            "do): pass game="
        )
    return found


def state_from_observation(game: GridConfig, obs: np.ndarray, t: np.ndarray | int = 0) -> State:
    """The states behind full-view observations (B, 5, H, W) of a two-player game, observer as player 0.

    Only there is an observation the whole state: channel 2 holds the observer's coins, channel 3 the
    other player's.
    """
    if game.n_agents != 2 or game.view_size is not None:
        raise ValueError(
            "an observation determines the state only in a two-player full-view game; this game has "
            f"n_agents={game.n_agents}, view_size={game.view_size}"
        )
    obs = np.asarray(obs)
    B, k = obs.shape[0], game.coins_per_agent
    flat = obs.reshape(B, 5, -1)
    agents = np.stack([flat[:, 0].argmax(1), flat[:, 1].argmax(1)], axis=1)
    own = np.sort(np.argsort(-flat[:, 2], axis=1, kind="stable")[:, :k], axis=1)
    other = np.sort(np.argsort(-flat[:, 3], axis=1, kind="stable")[:, :k], axis=1)
    times = np.broadcast_to(np.asarray(t, dtype=np.int64), (B,)).copy()
    return State(agents.astype(np.int64), np.concatenate([own, other], 1).astype(np.int64), times)


def swap_view(obs: torch.Tensor | np.ndarray):
    """A two-player full-view observation as the other player sees it (channels 0<->1, 2<->3)."""
    return obs[..., [1, 0, 3, 2, 4], :, :]


CPU_MAX_BATCH = 8192  # ImaginedSimulator's slices on a CPU
CPU_COMPILED_MAX_BATCH = 2048  # and a compiled step's (it allocates its intermediates afresh at every call)


class ImaginedSimulator:
    """A batch of imagined games stepped by a world model; tensors on the model's device.

    Args:
        model: a :class:`~gridmarl_wm.WorldModel` (or anything with its ``sample`` and ``opponent_probs``;
            the others' actions are drawn from its ``opponent_logits`` where it has them).
        opponent: ``"model"`` samples the others' actions from the model's opponent head; a callable maps
            the ego's observations (B, 5, h, w) to the others' actions (B, n_agents - 1).
        temperature: of the next-observation, reward and opponent samples; 0 takes the most likely ones.
        generator: a ``torch.Generator`` on the model's device, for reproducible imagination.
        agent: the observer's player index, for models whose opponent head takes it.
        max_batch: the most games stepped in one pass; more are stepped in slices of this many (a step is
            the same distribution either way). ``None``: 8,192 on a CPU, where larger batches fall out of
            its caches and run up to twice slower per game (2,048 for a compiled step, whose intermediates
            are fresh tensors at every call: on a 2-core CPU batch 4,096 ran about 10% faster in two
            slices), and all at once on other devices.
        compile: run the step through ``torch.compile`` (a world model with a mixture decoder only). The
            first step compiles it (about half a minute on a CPU, less once its cache holds it); the
            samples are those of the uncompiled step from the same generator, up to rounding.

    With a mixture-decoder world model a step draws all its uniform numbers in one block (the others'
    actions', then the model's ``uniforms=``) and is otherwise a function of its inputs, compiled or not.
    """

    def __init__(
        self,
        model: Any,
        opponent: str | TensorOpponent = "model",
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        agent: int = 0,
        max_batch: int | None = None,
        compile: bool = False,
    ) -> None:
        if not (opponent == "model" or callable(opponent)):
            raise ValueError(f"opponent must be 'model' or a callable obs -> actions, got {opponent!r}")
        if not (isinstance(temperature, int | float) and temperature >= 0):
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        self.model = model
        self.opponent = opponent
        self.temperature = float(temperature)
        self.generator = generator
        self.agent = agent
        if max_batch is not None and (
            isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1
        ):
            raise ValueError(f"max_batch must be an int >= 1 or None, got {max_batch!r}")
        self.max_batch = max_batch
        cfg = getattr(model, "cfg", None)
        self._agent_id = bool(getattr(cfg, "agent_id", False))
        self._n_others = int(getattr(cfg, "n_agents", 2)) - 1
        # the uniform numbers the model's sample takes as an input, or None where it draws its own
        self._draws = getattr(model, "uniform_draws", None)
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        if compile and self._draws is None:
            raise ValueError(
                "compile=True needs a world model whose sample takes its uniform numbers as an input (a "
                f"mixture decoder's); {type(model).__name__}"
                + (f" with decoder={cfg.decoder!r}" if hasattr(cfg, "decoder") else "")
                + " draws its own"
            )
        self.compile = compile
        self._from_uniforms = (
            torch.compile(self._step_from_uniforms, dynamic=True) if compile else self._step_from_uniforms
        )

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.device)

    def opponent_actions(self, obs: torch.Tensor, uniforms: torch.Tensor | None = None) -> torch.Tensor:
        """The others' actions (B, n_agents - 1) at ``obs``; from the opponent head they are drawn with
        ``uniforms`` (B, n_agents - 1) in [0, 1) where given, else from the generator."""
        if callable(self.opponent):
            return torch.as_tensor(self.opponent(obs), device=obs.device).long()
        if not hasattr(self.model, "opponent_probs"):
            raise ValueError(
                f"opponent='model' needs a model with an opponent head; {type(self.model).__name__} has none: "
                "give the others' actions, or their policy as a callable obs -> actions"
            )
        agent = torch.full((obs.shape[0],), self.agent, device=obs.device) if self._agent_id else None
        if hasattr(self.model, "opponent_logits"):  # the logits themselves: no softmax, slow on short rows
            logits = self.model.opponent_logits(obs, agent=agent)  # (B, n - 1, 5)
        else:  # a model that gives probabilities only
            logits = self.model.opponent_probs(obs, agent=agent).clamp_min(1e-30).log()
        if self.temperature == 0:
            return logits.argmax(-1)
        return categorical(weights(logits / self.temperature), self.generator, uniforms)

    @torch.no_grad()
    def step(
        self, obs: torch.Tensor, actions: torch.Tensor, other_actions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One imagined step of every game: next observations (B, 5, h, w), the ego's rewards (B,) and the
        others' actions used (B, n_agents - 1), taken from ``opponent`` unless given."""
        limit = self.max_batch
        if limit is None and torch.device(self.model.device).type == "cpu":
            limit = CPU_COMPILED_MAX_BATCH if self.compile else CPU_MAX_BATCH
        if other_actions is None and callable(self.opponent):
            # a policy of its own: run as the caller runs it (outside the model's graph and inference mode)
            other_actions = self.opponent_actions(obs)
        uniforms = None
        if self._draws is not None and self.temperature != 0:  # every game's numbers in one block
            n = self._draws + (self._n_others if other_actions is None else 0)
            uniforms = torch.rand((obs.shape[0], n), generator=self.generator, device=obs.device)
        if limit is None or obs.shape[0] <= limit:
            out = self._step(obs, actions, other_actions, uniforms)
        else:
            parts = [
                self._step(
                    *(
                        None if x is None else x[i : i + limit]
                        for x in (obs, actions, other_actions, uniforms)
                    )
                )
                for i in range(0, obs.shape[0], limit)
            ]
            out = tuple(torch.cat(p) for p in zip(*parts, strict=True))
        # what the caller gets are ordinary tensors (an inference tensor can be neither saved for backward nor
        # changed in place outside inference mode)
        return tuple(t.clone() if t.is_inference() else t for t in out)

    def _step(self, obs, actions, other_actions, uniforms):
        """One slice's step. The model runs in inference mode, whose operations skip autograd's bookkeeping
        (version counters, views' records): on a CPU about a twentieth of a step at batch 768."""
        if self._draws is None:  # a model that draws its own numbers
            with torch.inference_mode():
                if other_actions is None:  # from the model's opponent head
                    other_actions = self.opponent_actions(obs)
                nxt, reward = self.model.sample(
                    obs, actions, other_actions, generator=self.generator, temperature=self.temperature
                )
            return nxt, reward, other_actions
        if self.compile:
            # contiguous tensors that are not views (compiled code guards on a view's base and on strides):
            # slices of a batch and columns of a planner's sequences then compile nothing new (made here,
            # outside inference mode: a copy made inside it would be an inference tensor, which compiled code
            # tells apart from an ordinary one)
            obs, actions = obs.contiguous().detach(), actions.contiguous().detach()
            other_actions = None if other_actions is None else other_actions.contiguous().detach()
            uniforms = None if uniforms is None else uniforms.contiguous().detach()
        with torch.inference_mode():
            return self._from_uniforms(obs, actions, other_actions, uniforms)

    def _step_from_uniforms(self, obs, actions, other_actions, uniforms):
        """A step as a function of its inputs: the others' actions from the opponent head (unless given)
        with the first ``n_agents - 1`` of ``uniforms`` (B, n), the model's sample with the rest (None at
        temperature 0). What ``compile=True`` compiles."""
        if other_actions is None:
            k = self._n_others
            other_actions = self.opponent_actions(obs, None if uniforms is None else uniforms[:, :k])
            uniforms = None if uniforms is None else uniforms[:, k:]
        nxt, reward = self.model.sample(
            obs, actions, other_actions, temperature=self.temperature, uniforms=uniforms
        )
        return nxt, reward, other_actions


class _ScriptedOpponent:
    """Scripted opponents of one imagined game, acting on the state its observation shows (two players,
    full view)."""

    def __init__(self, game: GridConfig, spec: Any, switch_every: int, switch_pool: Sequence[str]) -> None:
        self.game = game
        self.opponents = Opponents(GridCore(game), 0, spec, switch_every, switch_pool)

    def reset(self, rng: np.random.Generator) -> None:
        self.opponents.reset(1, None, rng.random((1, self.opponents.n_reset_draws)))

    def act(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        state = state_from_observation(self.game, obs[None], t)
        return self.opponents.act(state, rng.random((1, self.opponents.n_step_draws)))[0]


class ImaginedEnv(gym.Env):
    """``GridMARL-v0`` played inside a world model: same spaces, API, seeding and truncation.

    Args:
        model: a :class:`~gridmarl_wm.WorldModel` (or :class:`~gridmarl_wm.simulation.exact_model.ExactModel`).
        opponent: ``"model"`` (the model's opponent head), or, in a two-player full-view game, any opponent
            ``gym.make("GridMARL-v0")`` takes (a name such as ``"greedy"``, or a callable ``policy(obs)``
            on the opponent's own observation), run on the state the imagined observation shows.
        temperature: of every sample; 0 plays the model's most likely outcomes.
        game: the game, when the model does not carry it.
        render_mode: as the real env's (two-player full view, where an observation is the whole state).
        ego: the player whose view is imagined.
        start: where a plain ``reset()`` (no ``options["obs"]``) starts: ``"data"`` (the default) draws one
            of the first observations of the episodes the model was trained on, which training stores with
            the model (``model.start_obs``, ``model.start_agent``): the ego's own where there are any,
            else the other players' (the game's reset treats players alike, so a first observation has the
            same distribution whoever sees it);
            ``"real"`` draws a start from the real game's reset instead (the rules, not the model). The
            exact stand-in (:class:`~gridmarl_wm.simulation.exact_model.ExactModel`) is the rules, so its data start
            is the real reset.

    ``reset(options={"obs": real_obs, "t": steps_played})`` starts from a given observation (``t`` sets how
    many steps remain before truncation).

    ``info`` has the real env's keys: ``step``'s holds ``opponent_actions``, ``rewards`` (every player's,
    player order: the model's samples for both players of a two-player full-view game; elsewhere the
    model sees only the ego's reward and the others' are 0, as :attr:`rewards_seen` says),
    ``opponent_policies`` (left out with ``policy_names_in_info=False``), ``opponent_policy_ids`` (ids of
    :attr:`opponent_policy_names`) and ``t``; ``reset``'s the last three.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(
        self,
        model: Any,
        opponent: Any = "model",
        temperature: float = 1.0,
        game: GridConfig | dict | None = None,
        render_mode: str | None = None,
        ego: int = 0,
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
        policy_names_in_info: bool = True,
        start: str = "data",
    ) -> None:
        self.config = game_of(model, game)
        self.core = GridCore(self.config)
        self.policy_names_in_info = bool(policy_names_in_info)
        if not (isinstance(ego, int | np.integer) and 0 <= ego < self.config.n_agents):
            raise ValueError(f"ego must be a player index in 0..{self.config.n_agents - 1}, got {ego!r}")
        self.ego = int(ego)
        self.model = model
        if start not in ("data", "real"):
            raise ValueError(
                f"start must be 'data' (the model's stored start observations) or 'real', got {start!r}"
            )
        self.start = start
        self._starts = None  # (N, 5, h, w) the stored first observations a plain reset draws from
        if start == "data" and not _is_exact(model):
            self._starts = _start_observations(model, self.ego, self.config)
        self.observation_space = observation_space(self.config)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._whole_state = self.config.n_agents == 2 and self.config.view_size is None
        #: Per player, whether ``info["rewards"]`` holds the model's prediction of its reward (True) or a
        #: placeholder 0 (the model sees only the ego's reward unless an observation is the whole state).
        self.rewards_seen = tuple(self._whole_state or i == self.ego for i in range(self.config.n_agents))
        self._scripted = None
        if opponent != "model":
            if not self._whole_state:
                raise ValueError(
                    f"opponent={opponent!r}: scripted opponents need the state, which only a two-player "
                    "full-view observation shows; use opponent='model' for this game"
                )
            self._scripted = _ScriptedOpponent(self.config, opponent, switch_every, switch_pool)
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {[None, *RENDER_MODES]}, got {render_mode!r}")
        if render_mode is not None and not self._whole_state:
            raise ValueError(
                f"render_mode={render_mode!r}: an imagined game is drawn from the state its observation "
                "shows, so only two-player full-view games render"
            )
        self.render_mode = render_mode
        self._renderer = FrameRenderer(render_mode)
        self.generator = torch.Generator(device=torch.device(model.device))
        self.sim = ImaginedSimulator(
            model,
            "model" if self._scripted is None else self._scripted_actions,
            temperature,
            self.generator,
            agent=self.ego,
        )
        self._obs: torch.Tensor | None = None
        self._t = 0

    @property
    def temperature(self) -> float:
        return self.sim.temperature

    def _scripted_actions(self, obs: torch.Tensor) -> torch.Tensor:
        actions = self._scripted.act(obs[0].cpu().numpy(), self._t, self.np_random)
        return torch.as_tensor(actions[None], device=obs.device)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.generator.manual_seed(int(self.np_random.integers(2**63 - 1)))
        options = options or {}
        start = options.get("obs")
        # drawn whatever the start, so that a given start leaves the generator where the real env's reset does
        u = self.np_random.random((1, self.config.n_agents + self.config.n_coins))
        if start is None and self._starts is not None:
            obs = self._starts[self.np_random.integers(len(self._starts))].astype(np.float32)
        elif start is None:
            if self.start == "data" and not _is_exact(self.model):
                raise ValueError(
                    "this model carries no start observations (training stores the first observations of its "
                    "data's episodes with the model; this one was not trained or loaded that way): pass "
                    "reset(options={'obs': ...}), or ImaginedEnv(..., start='real') to start from the real "
                    "game's reset"
                )
            obs = self.core.observe(self.core.reset(u), (self.ego,))[0, 0]
        else:
            obs = np.asarray(start, dtype=np.float32)
            if obs.shape != self.config.obs_shape or not self.observation_space.contains(obs):
                raise ValueError(
                    f"options['obs'] must be an observation of this game, shape {self.config.obs_shape} "
                    f"within {self.observation_space}; got shape {obs.shape}"
                )
        t = options.get("t", 0)
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t <= self.config.max_steps:
            raise ValueError(
                f"options['t'] must be an int in 0..max_steps={self.config.max_steps}, got {t!r}"
            )
        self._t = int(t)
        self._obs = torch.as_tensor(obs, device=self.generator.device)[None]
        if self._scripted is not None:
            self._scripted.reset(self.np_random)
        if self.render_mode == "human":
            self.render()
        return obs.copy(), self._policy_info()

    def step(self, action):
        if self._obs is None or self._t >= self.config.max_steps:
            raise ResetNeeded("the episode has ended (or never started): call reset() before step()")
        rewards, others, truncated = self._advance(check_action(action))
        info = {
            "opponent_actions": others[0].cpu().numpy().astype(np.int64),
            "rewards": rewards,
            **self._policy_info(),
        }
        if self.render_mode == "human":
            self.render()
        return self._obs[0].cpu().numpy(), float(rewards[self.ego]), False, truncated, info

    @property
    def opponent_policy_names(self) -> tuple[str, ...]:
        """Name of every policy id that ``info["opponent_policy_ids"]`` may hold, indexed by id: the real
        env's table for scripted opponents; with ``opponent="model"`` the built-ins and then ``"model"``."""
        if self._scripted is not None:
            return tuple(self._scripted.opponents.names)
        return (*BUILTIN_POLICIES, MODEL_POLICY)

    def _policy_info(self) -> dict[str, Any]:
        """The info keys that reset and step share with ``GridMARL-v0``'s: the opponents' policy ids (and
        names) and the steps played."""
        if self._scripted is not None:
            ids = self._scripted.opponents.current[0].copy()
        else:
            ids = np.full(self.config.n_agents - 1, len(BUILTIN_POLICIES), dtype=np.int64)
        info: dict[str, Any] = {"opponent_policy_ids": ids}
        if self.policy_names_in_info:
            names = self.opponent_policy_names
            info["opponent_policies"] = [names[i] for i in ids]
        info["t"] = np.int64(self._t)  # as the real env's: array readers (TorchRL's) need a dtype
        return info

    def _advance(
        self, action: int, other_actions: list[int] | None = None
    ) -> tuple[np.ndarray, torch.Tensor, bool]:
        """One imagined step with the ego's ``action`` (the others' from ``opponent`` unless given): every
        player's reward (n_agents,) float32, the others' actions (1, n - 1) and whether the episode is
        now truncated.

        The model predicts the reward of the player whose view it is given. In a two-player full-view game
        the other player's view is the same observation with the players' channels swapped, so one
        batched ``sample`` of both views draws both players' rewards the same way (same temperature, same
        generator); the next observation is the ego view's. Elsewhere the model does not see the others'
        rewards: they are 0 (see :attr:`rewards_seen`; not NaN, which no same-seed check can compare).
        """
        dev = self._obs.device
        ego_action = torch.tensor([action], device=dev)
        if other_actions is None:
            others = self.sim.opponent_actions(self._obs)
        else:
            others = torch.tensor([other_actions], device=dev)
        rewards = np.zeros(self.config.n_agents, dtype=np.float32)
        if self._whole_state:
            views = torch.cat([self._obs, swap_view(self._obs)])  # (2, 5, H, W): the ego's, the other's
            nxt, reward = self.model.sample(
                views,
                torch.cat([ego_action, others[:, 0]]),
                torch.cat([others, ego_action[:, None]]),
                generator=self.generator,
                temperature=self.temperature,
            )
            nxt = nxt[:1]
            rewards[[self.ego, 1 - self.ego]] = reward.cpu().numpy()
        else:
            nxt, reward, others = self.sim.step(self._obs, ego_action, others)
            rewards[self.ego] = reward.cpu().numpy()[0]
        self._obs = nxt.to(torch.float32)
        self._t += 1
        return rewards, others, self._t >= self.config.max_steps

    def imagined_state(self) -> State:
        """The state the current imagined observation shows (two players, full view)."""
        if self._obs is None:
            raise ResetNeeded("call reset() before imagined_state()")
        state = state_from_observation(self.config, self._obs.cpu().numpy(), self._t)
        if self.ego != 0:
            state.agents[:, [0, self.ego]] = state.agents[:, [self.ego, 0]]
            k = self.config.coins_per_agent
            state.coins[:] = np.concatenate([state.coins[:, k:], state.coins[:, :k]], 1)
        return state

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode= to ImaginedEnv")
            return None
        return self._renderer.render(self.core, self.imagined_state(), 0, highlight=self.ego)

    def close(self) -> None:
        self._renderer.close()


class ImaginedParallelEnv(ParallelEnv):
    """``gridmarl.parallel_env()`` of a two-player full-view game, played inside a world model.

    The imagined state is player_0's observation (the whole state); player_1 sees it with the players'
    channels swapped. Both players' rewards are sampled from the model's reward head, each for its own
    view, in one batched ``sample`` at the env's temperature with its generator (temperature 0: both the
    most likely); ``infos`` are empty, as the real parallel env's.
    """

    metadata = {"name": "gridmarl_imagined_v0", "render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(
        self,
        model: Any,
        temperature: float = 1.0,
        game: GridConfig | dict | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = game_of(model, game)
        if self.config.n_agents != 2 or self.config.view_size is not None:
            raise ValueError(
                "ImaginedParallelEnv needs a two-player full-view game: each player's view is then known "
                f"from the other's; this game has n_agents={self.config.n_agents}, "
                f"view_size={self.config.view_size}. Use ImaginedEnv(model, opponent='model') instead"
            )
        self.env = ImaginedEnv(model, opponent="model", temperature=temperature, game=self.config)
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self._obs_space = observation_space(self.config)
        self._act_space = spaces.Discrete(N_ACTIONS)
        self.state_space = spaces.Box(0.0, float(self.config.n_agents), self.config.state_shape, np.float32)
        self.render_mode = render_mode
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {[None, *RENDER_MODES]}, got {render_mode!r}")
        self._renderer = FrameRenderer(render_mode)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def _views(self, obs0: np.ndarray) -> dict[str, np.ndarray]:
        return {"player_0": obs0, "player_1": np.ascontiguousarray(swap_view(obs0))}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs0, _ = self.env.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        if self.render_mode == "human":
            self.render()
        return self._views(obs0), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ResetNeeded("the episode has ended (or never started): call reset() before step()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"actions lacks {missing}: give one action per live agent {self.agents}")
        a0 = check_action(actions["player_0"], "action of player_0")
        a1 = check_action(actions["player_1"], "action of player_1")
        env = self.env
        both, _, truncated = env._advance(a0, [a1])
        obs0 = env._obs[0].cpu().numpy()
        rewards = {"player_0": float(both[0]), "player_1": float(both[1])}
        agents = self.agents
        if truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return (
            self._views(obs0),
            rewards,
            {a: False for a in agents},
            {a: truncated for a in agents},
            {a: {} for a in agents},
        )

    def state(self) -> np.ndarray:
        """Global state (5, H, W) float32 of the imagined game."""
        if self.env._obs is None:
            raise ResetNeeded("call reset() before state()")
        return self.env.core.global_state(self.env.imagined_state())[0]

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode")
            return None
        return self._renderer.render(self.env.core, self.env.imagined_state(), 0)

    def close(self) -> None:
        self._renderer.close()
        self.env.close()
