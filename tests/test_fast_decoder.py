"""The mixture decoder and MLP trunk (``decoder="mixture"``, ``trunk="mlp"``): exact probabilities,
sampling that matches them, learning from the actions, checkpoints, and an imagined step without host
round trips."""

import itertools

import numpy as np
import pytest
import torch
from wm_helpers import eight_deterministic_transitions

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel, WorldModelConfig
from gridmarl_wm.model.mixture_decoder import MixtureDecoder, max_per_cell
from gridmarl_wm.simulation.imagine import ImaginedSimulator
from gridmarl_wm.training.losses import LossWeights, world_model_losses
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for

TINY = {"obs_shape": (5, 1, 2), "max_count": (2, 2, 2, 2, 2), "d_model": 16, "mixture_hidden": 8,
        "mixture_scorer": 4}  # fmt: skip


def _tiny(**overrides) -> WorldModel:
    torch.manual_seed(0)
    cfg = {"decoder": "mixture", "trunk": "mlp", "trunk_hidden": 16, "mixture_components": 3, **TINY}
    return WorldModel(WorldModelConfig(**(cfg | overrides))).eval()


def _every_observation(levels: list[int]) -> torch.Tensor:
    """(M, 5, 1, 2): every plane of counts with cell counts 0 .. levels[c] - 1 in channel c."""
    grid = itertools.product(*[range(L) for L in levels for _ in range(2)])
    return torch.tensor(list(grid), dtype=torch.float32).view(-1, 5, 1, 2)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"mixture_scorer": 0},
        {"fusion": "film"},
        {"trunk": "local", "fusion": "film"},
        {"trunk": "local"},
        {"trunk": "conv", "features": 4},
        {"trunk": "conv", "variant": "latent", "latent": 8},
    ],
    ids=["mlp", "mlp-no-scorer", "mlp-film", "local-film", "local", "conv", "latent"],
)
def test_log_prob_sums_to_one_and_sampling_matches_it(overrides):
    """Every observation of a tiny grid enumerated (channel 1 holds up to two objects per cell): the
    probabilities sum to 1 (those of the features' components alone too), and sample frequencies match
    exp(log_prob)."""
    model = _tiny(max_per_cell=(1, 2, 1, 1, 1), **overrides)
    outcomes = _every_observation([2, 3, 2, 2, 2])
    M = len(outcomes)
    obs = torch.tensor([[1.0, 0], [0, 2], [0, 0], [1, 0], [0, 1]]).view(1, 5, 1, 2)
    a, others = torch.tensor([3]), torch.tensor([[1]])
    p = model.log_prob(obs.expand(M, -1, -1, -1), a.expand(M), others.expand(M, 1), outcomes).exp()
    assert abs(float(p.sum()) - 1.0) < 1e-5
    pred = model(obs.expand(M, -1, -1, -1), model.joint(a.expand(M), others.expand(M, 1)), heads=False)
    with torch.no_grad():
        full, alone = model.decode_log_probs(pred, obs.expand(M, -1, -1, -1), outcomes, features_alone=True)
    assert torch.allclose(full.exp(), p, atol=1e-6)
    if model.cfg.mixture_scorer:
        assert abs(float(alone.exp().sum()) - 1.0) < 1e-5 and not torch.allclose(alone, full)
    else:
        assert alone is None
    # an observation outside the decoder's range (3 in channel 1, 2 in channel 0, a fraction) has p = 0
    bad = outcomes[:3].clone()
    bad[0, 1, 0, 0], bad[1, 0, 0, 1], bad[2, 2, 0, 0] = 3.0, 2.0, 0.5
    assert torch.isneginf(
        model.log_prob(obs.expand(3, -1, -1, -1), a.expand(3), others.expand(3, 1), bad)
    ).all()
    _assert_samples_follow(model, obs, a, others, p, outcomes)


def test_the_compiled_branches_sample_what_log_prob_gives(monkeypatch):
    """The branch a compiled step takes (the planes' part of a channel's inputs added out of place), run
    eagerly: sample frequencies still match exp(log_prob)."""
    import gridmarl_wm.model.mixture_decoder as md

    model = _tiny(max_per_cell=(1, 2, 1, 1, 1), fusion="film")
    outcomes = _every_observation([2, 3, 2, 2, 2])
    M = len(outcomes)
    obs = torch.tensor([[1.0, 0], [0, 2], [0, 0], [1, 0], [0, 1]]).view(1, 5, 1, 2)
    a, others = torch.tensor([3]), torch.tensor([[1]])
    p = model.log_prob(obs.expand(M, -1, -1, -1), a.expand(M), others.expand(M, 1), outcomes).exp()
    monkeypatch.setattr(md, "_compiling", lambda: True)
    _assert_samples_follow(model, obs, a, others, p, outcomes)


def _assert_samples_follow(model, obs, a, others, p, outcomes) -> None:
    """60,000 samples of ``model`` at one (obs, a, others) against the probabilities ``p`` of every outcome
    in ``outcomes`` (the enumeration of ``_every_observation([2, 3, 2, 2, 2])``)."""
    M = len(outcomes)
    N = 60_000
    g = torch.Generator().manual_seed(1)
    sample, _ = model.sample(obs.expand(N, -1, -1, -1), a.expand(N), others.expand(N, 1), generator=g)
    radix = np.repeat([2, 3, 2, 2, 2], 2)  # outcome index in the enumeration's mixed radix
    place = np.cumprod(np.r_[radix[1:], 1][::-1])[::-1]
    counts = np.bincount(sample.flatten(1).long().numpy() @ place, minlength=M)
    assert np.array_equal(outcomes.flatten(1).long().numpy() @ place, np.arange(M))
    expected = p.numpy() * N
    top = np.argsort(-expected)[:40]  # the likely outcomes, each within 5 standard deviations
    assert np.all(np.abs(counts[top] - expected[top]) <= 5 * np.sqrt(expected[top]) + 5)
    # Pearson's chi-square over all outcomes (about 26 expected draws each): mean M - 1, sd sqrt(2 (M - 1))
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < (M - 1) + 6 * np.sqrt(2 * (M - 1)), chi2


def test_the_cell_scorer_shares_its_weights_across_cells():
    """The cells' own components are scored from each cell's inputs alone, one set of weights for every
    cell: permuting the cells permutes their logits, and cells with the same inputs get the same logit (so an
    object spread evenly over cells that look alike needs no per-cell tuning)."""
    torch.manual_seed(0)
    dec = MixtureDecoder(8, (5, 2, 3), (1, 1, 1, 1, 1), components=7, hidden=8, scorer=4)
    V = 6
    feats, cells = torch.randn(3, 8), torch.randn(3, V, 5 + 2)  # inputs and the planes of channels 0 and 1
    cells[:, 4] = cells[:, 1]
    rest = dec._context(feats)
    rest = dec._after(dec._after(rest, 0, torch.zeros(3, V)), 1, torch.zeros(3, V))
    g = torch.relu(rest[:, 0, : dec.hidden])
    logits = dec._mixture_logits(2, rest, g, cells)
    assert logits.shape == (3, V + 7)
    own = logits[:, :V]
    assert torch.allclose(own[:, 4], own[:, 1]) and not torch.allclose(own[:, 0], own[:, 1])
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    assert torch.allclose(dec._mixture_logits(2, rest, g, cells[:, perm])[:, :V], own[:, perm], atol=1e-6)
    # the features' components that start on a cell get its score too; the features' last one does not
    no_scores = dec.mixture[2](g) + rest[:, 0, dec.hidden : dec.hidden + 7]
    assert torch.allclose(logits[:, V : 2 * V], no_scores[:, :V] + own, atol=1e-6)
    assert torch.allclose(logits[:, -1], no_scores[:, -1])
    # channel 2 reads the planes of channels 0 and 1
    earlier = cells.clone()
    earlier[..., 5 + 1] += 1.0
    assert not torch.allclose(dec._mixture_logits(2, rest, g, earlier), logits)
    with pytest.raises(ValueError, match="cells"):
        dec._mixture_logits(2, rest, g, None)


def test_the_features_alone_term_is_trained_only_at_first(tmp_path):
    """With a cell scorer the loss adds the features' components alone for the first part of training (see
    ``MixtureDecoder.log_probs``), and not after; without a scorer never."""
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=4, num_envs=8, seed=0))
    for scorer in (16, 0):
        model = WorldModel(
            model_config_for(game, data, decoder="mixture", trunk="mlp", mixture_scorer=scorer)
        )
        trainer = Trainer(model, data, game, TrainConfig(steps=10, batch_size=16), tmp_path / str(scorer))
        batch, weights = trainer.next_batch(), LossWeights(features_alone=0.5, features_alone_until=0.2)
        early = world_model_losses(model, batch, weights, progress=0.1)
        late = world_model_losses(model, batch, weights, progress=0.2)
        assert "obs_nll_features_alone" not in late
        assert torch.allclose(late["obs_nll"], early["obs_nll"])
        if scorer:
            extra = early["obs_nll_features_alone"]
            assert torch.allclose(early["total"], late["total"] + 0.5 * extra)
            off = world_model_losses(model, batch, LossWeights(features_alone=0.0), progress=0.0)
            assert "obs_nll_features_alone" not in off
        else:
            assert "obs_nll_features_alone" not in early


def test_temperature_zero_takes_the_most_likely_component_and_cells():
    model = _tiny(max_per_cell=(1, 2, 1, 1, 1))
    obs = torch.zeros(4, 5, 1, 2)
    a, others = torch.arange(4), torch.zeros(4, 1, dtype=torch.long)
    first, _ = model.sample(obs, a, others, temperature=0)
    again, _ = model.sample(obs, a, others, temperature=0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(first, again)
    outcomes = _every_observation([2, 3, 2, 2, 2])
    M = len(outcomes)
    lp = model.log_prob(obs[:1].expand(M, -1, -1, -1), a[:1].expand(M), others[:1].expand(M, 1), outcomes)
    # greedy decoding is channel by channel, so it is a likely outcome, if not always the single likeliest
    greedy = model.log_prob(obs[:1], a[:1], others[:1], first[:1])
    assert greedy.exp() >= lp.exp().max() / 4


def test_a_briefly_trained_model_beats_an_action_blind_one():
    """Deterministic moves on the default game: a model that reads the actions gives the true next
    observations far more probability than the best a model that ignores them could (about 1/4 here,
    four joint actions per start state leading to four different observations)."""
    game = gridmarl.make_config()
    obs, joint, nxt = eight_deterministic_transitions(game)
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(decoder="mixture", trunk="mlp", d_model=32, trunk_hidden=32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = -model.decode_log_prob(model(obs, joint), obs, nxt).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model.log_prob(obs, joint[:, 0], joint[:, 1:], nxt).exp().min() > 0.9
    sampled, _ = model.sample(obs, joint[:, 0], joint[:, 1:], temperature=0)
    assert torch.equal(sampled, nxt)


def test_sampling_regroups_the_parameters_once_and_again_after_they_change():
    """``sample`` regroups the decoder's parameters into tables once and reuses them; an optimiser step
    changes the parameters in place, and the next sample comes from the new ones (as a fresh copy's does).
    The same for the table of the trunk's FiLM rows, one per joint action."""
    model = _tiny(max_per_cell=(1, 2, 1, 1, 1), fusion="film")
    obs = torch.zeros(256, 5, 1, 2)
    obs[:, 0, 0, 0] = obs[:, 1, 0, 1] = 1
    a, others = torch.arange(256) % 5, (torch.arange(256) // 5 % 5)[:, None]
    model.sample(obs, a, others)
    tables = model.decoder._sampling_tables()
    assert model.decoder._sampling_tables() is tables  # built once
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    gen = torch.Generator().manual_seed(0)
    for q in model.parameters():
        q.grad = torch.randn(q.shape, generator=gen)
    opt.step()
    fresh = WorldModel(model.cfg).eval()
    fresh.load_state_dict(model.state_dict())
    for temperature in (1.0, 0.0):
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        mine = model.sample(obs, a, others, g1, temperature=temperature)[0]
        assert torch.equal(mine, fresh.sample(obs, a, others, g2, temperature=temperature)[0])
    tables = model.decoder._sampling_tables()
    assert model.decoder._sampling_tables() is tables
    # a parameter replaced by a new tensor (not changed in place) counts as a change too
    model.decoder.base[0].bias = torch.nn.Parameter(model.decoder.base[0].bias.detach() + 1)
    assert model.decoder._sampling_tables() is not tables


def test_scratch_buffers_hold_intermediates_only_and_belong_to_one_thread():
    """The buffers that a CPU step writes its largest intermediates into are reused by the next call of the
    same thread (so its pages stay mapped), never while autograd records, never shared between threads, and
    never returned: what one sample returned is unchanged by the next sample, and a sample with reused
    buffers equals one with fresh tensors."""
    import threading

    import gridmarl_wm.model.mixture_decoder as md

    like = torch.zeros(1)
    with torch.no_grad():
        first = md.scratch("test", (4, 3), like)
        assert first.shape == (4, 3)
        assert md.scratch("test", (2, 3), like).data_ptr() == first.data_ptr()  # the same memory again
        assert md.scratch("test", (4, 3), like) is first  # the view itself, handed out again
        larger = md.scratch("test", (5, 3), like)  # more than the buffer holds: a new one
        again = md.scratch("test", (4, 3), like)
        assert again.data_ptr() == larger.data_ptr() and again.shape == (4, 3)
        for n in range(md.MAX_SCRATCH_VIEWS + 2):  # many shapes: the record of views stays bounded
            assert md.scratch("test", (1, n % 5 + 1), like).shape == (1, n % 5 + 1)
            md.scratch(f"test-{n}", (1,), like)
        assert len(md._scratch.views) <= md.MAX_SCRATCH_VIEWS
        first = md.scratch("test", (4, 3), like)
        other = []

        def in_another_thread():
            with torch.no_grad():  # grad mode is per thread
                other.append(md.scratch("test", (4, 3), like).data_ptr())

        thread = threading.Thread(target=in_another_thread)
        thread.start()
        thread.join()
        assert other[0] != first.data_ptr()
    assert md.scratch("test", (4, 3), like) is None  # autograd records: a fresh tensor

    model = _tiny(max_per_cell=(1, 2, 1, 1, 1), fusion="film")
    obs = torch.zeros(64, 5, 1, 2)
    obs[:, 0, 0, 0] = obs[:, 1, 0, 1] = 1
    a, others = torch.arange(64) % 5, (torch.arange(64) // 5 % 5)[:, None]
    out = model.sample(obs, a, others, torch.Generator().manual_seed(1))
    kept = [t.clone() for t in out]
    with torch.no_grad():
        feats = model.trunk(obs, model.joint(a, others))
    kept_feats = feats.clone()
    model.sample(1 - obs, (a + 1) % 5, others, torch.Generator().manual_seed(2))  # overwrites the buffers
    assert all(torch.equal(t, k) for t, k in zip(out, kept, strict=True)) and torch.equal(feats, kept_feats)
    with md.fresh_tensors():
        assert md.scratch("test", (4, 3), like) is None
        fresh = model.sample(obs, a, others, torch.Generator().manual_seed(1))
    assert all(torch.equal(t, k) for t, k in zip(fresh, kept, strict=True))
    with torch.no_grad():
        assert md.scratch("test", (4, 3), like) is not None  # on again after it
    with torch.autocast("cpu", dtype=torch.bfloat16):  # products in bf16, which no fp32 buffer can take
        assert model.sample(obs, a, others)[0].shape == obs.shape


def _default_game_model() -> tuple[WorldModel, torch.Tensor, torch.Tensor]:
    """An untrained small mixture model of the default game, 300 real first observations and own actions."""
    torch.manual_seed(0)
    cfg = WorldModelConfig(decoder="mixture", trunk="mlp", fusion="film", d_model=16, trunk_hidden=16)
    model = WorldModel(cfg).eval()
    game = gridmarl.make_config()
    state = gridmarl.GridCore(game).reset(np.random.default_rng(0).random((300, 4)))
    obs = torch.as_tensor(gridmarl.GridCore(game).observe(state, (0,))[:, 0])
    return model, obs, torch.arange(300) % 5


def test_an_imagined_step_draws_its_numbers_in_one_block_and_is_a_function_of_them():
    """With a mixture decoder a step draws ``n_agents - 1 + model.uniform_draws`` uniform numbers per game
    in one block, the others' actions' first, and is the model's sample at those numbers: the same
    numbers give the same step. Bad numbers are refused by name, and a pointer decoder, which draws its
    own, refuses them."""
    model, obs, a = _default_game_model()
    B = len(obs)
    assert model.uniform_draws == 1 + 5 * (16 + 1)  # the reward's, then a component and 16 cells per channel
    sim = ImaginedSimulator(model, generator=torch.Generator().manual_seed(3))
    nxt, reward, others = sim.step(obs, a)
    u = torch.rand((B, 1 + model.uniform_draws), generator=torch.Generator().manual_seed(3))
    probs = model.opponent_probs(obs)[:, 0]
    mine_others = (probs.cumsum(-1) < (1 - u[:, :1]) * probs.sum(-1, keepdim=True)).sum(-1).clamp(max=4)
    assert torch.equal(others[:, 0], mine_others)
    mine = model.sample(obs, a, others, uniforms=u[:, 1:])
    assert torch.equal(nxt, mine[0]) and torch.equal(reward, mine[1])
    again = model.sample(obs, a, others, uniforms=u[:, 1:])
    assert torch.equal(again[0], mine[0])
    assert not torch.equal(model.sample(obs, a, others, uniforms=u[:, 1:].flip(0))[0], mine[0])
    with pytest.raises(
        ValueError, match=r"uniforms must have shape \(300, 86\) \(games, uniform_draws\), got \(300, 85\)"
    ):
        model.sample(obs, a, others, uniforms=u[:, 2:])
    pointer = WorldModel(WorldModelConfig(d_model=16, features=4)).eval()
    assert pointer.uniform_draws is None
    with pytest.raises(ValueError, match="uniforms= needs a model with a mixture decoder"):
        pointer.sample(obs, a, others, uniforms=u[:, 1:])
    with pytest.raises(ValueError, match="compile=True needs a world model"):
        ImaginedSimulator(pointer, compile=True)
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        ImaginedSimulator(model, compile="yes")


def _no_compiler() -> bool:
    import shutil

    return not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++"))


@pytest.mark.skipif(_no_compiler(), reason="torch.compile on a CPU needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_compiled_step_samples_what_the_uncompiled_step_samples():
    """``compile=True`` changes how a step runs, not what it draws: from the same generator the compiled
    step gives the uncompiled step's samples (up to rounding, which may move a draw that lies on a
    boundary), for other batch sizes too after one compilation, and for a batch stepped in slices."""
    model, obs, a = _default_game_model()
    big = obs.repeat(7, 1, 1, 1)
    runs = {}
    for compiled in (False, True):
        sim = ImaginedSimulator(model, generator=torch.Generator().manual_seed(1), compile=compiled)
        # 2,100 games: two slices when compiled on a CPU (CPU_COMPILED_MAX_BATCH), one otherwise
        runs[compiled] = [sim.step(obs[:B], a[:B]) for B in (300, 7, 300)] + [sim.step(big, a.repeat(7))]
    for eager, fast in zip(runs[False], runs[True], strict=True):
        for x, y in zip(eager, fast, strict=True):
            assert x.shape == y.shape and x.dtype == y.dtype
            assert (x == y).float().mean() > 0.999
    # a planner steps columns of its action sequences, whose strides vary with the horizon left: once warm,
    # they compile nothing new (a compilation takes seconds)
    sequences = {H: torch.arange(300 * H).view(300, H) % 5 for H in (1, 3, 8)}
    sim.step(obs, a, a[:, None])  # the others' actions given: one more compilation
    with torch._dynamo.config.patch(error_on_recompile=True):
        for H, seqs in sequences.items():
            sim.step(obs, seqs[:, H - 1])
            sim.step(obs[:50], seqs[:50, 0], seqs[:50, H - 1 : H])


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_step_traces_as_one_graph():
    """What ``compile=True`` compiles is one graph: no break around the tables built from the parameters,
    the reused buffers or the draws (a break splits the compiled step into pieces with Python between
    them). ``torch._dynamo.explain`` traces it without compiling, so this needs no C++ compiler."""
    model, obs, a = _default_game_model()
    sim = ImaginedSimulator(model, generator=torch.Generator().manual_seed(1))
    u = torch.rand((len(obs), 1 + model.uniform_draws), generator=torch.Generator().manual_seed(2))
    sim.step(obs, a)  # the tables built and the buffers taken outside the trace first, as a planner would
    torch._dynamo.reset()
    for others, uniforms in ((None, u), (a[:, None], u[:, 1:])):
        explained = torch._dynamo.explain(sim._step_from_uniforms)(obs, a, others, uniforms)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1


def test_checkpoint_round_trip_and_cli_config(tmp_path):
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=4, num_envs=32, seed=0))
    cfg = model_config_for(game, data, decoder="mixture", trunk="mlp", d_model=16, trunk_hidden=16)
    assert cfg.max_per_cell == max_per_cell(data.next_obs) == (1, 1, 1, 1, 1)
    torch.manual_seed(0)
    model = WorldModel(cfg)
    trainer = Trainer(model, data, game, TrainConfig(steps=3, batch_size=32, log_every=1), tmp_path)
    trainer.run(progress=False)
    loaded = WorldModel.load(tmp_path / "checkpoint.pt", game)
    assert loaded.cfg == model.cfg and loaded.cfg.decoder == "mixture"
    obs = torch.as_tensor(data.obs[:16])
    a, others = torch.as_tensor(data.action[:16]), torch.as_tensor(data.others[:16])
    nxt = torch.as_tensor(data.next_obs[:16])
    assert torch.allclose(loaded.log_prob(obs, a, others, nxt), model.log_prob(obs, a, others, nxt))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(loaded.sample(obs, a, others, g1)[0], model.sample(obs, a, others, g2)[0])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="decoder"):
        WorldModelConfig(decoder="parallel")
    with pytest.raises(ValueError, match="trunk"):
        WorldModelConfig(trunk="transformer")
    with pytest.raises(ValueError, match="trunk='mlp'"):
        WorldModelConfig(trunk="mlp")  # the pointer decoder needs per-cell features
    with pytest.raises(ValueError, match="max_per_cell"):
        WorldModelConfig(decoder="mixture", max_per_cell=(1, 1, 0, 1, 1))
    with pytest.raises(ValueError, match="mixture_components"):
        WorldModelConfig(decoder="mixture", mixture_components=-1)
    with pytest.raises(ValueError, match="d_model must be an int >= 1, got 0"):
        WorldModelConfig(decoder="mixture", trunk="mlp", d_model=0)
    with pytest.raises(ValueError, match="observations"):
        max_per_cell(np.zeros((3, 4, 4)))


def _step_twice(model, device):
    sim = ImaginedSimulator(model, generator=torch.Generator(device=device).manual_seed(0))
    obs = torch.zeros(64, 5, 4, 4, device=device)
    obs[:, 0, 0, 0] = obs[:, 1, 3, 3] = obs[:, 2, 1, 1] = obs[:, 3, 2, 2] = 1
    actions = torch.randint(0, 5, (64,), device=device)
    sim.step(obs, actions)  # warm-up: anything made once is made here
    return sim, obs, actions


MODELS = {
    "mixture": {"decoder": "mixture", "trunk": "mlp"},
    "mixture-no-scorer": {"decoder": "mixture", "trunk": "mlp", "mixture_scorer": 0},
    "pointer": {},
}


@pytest.mark.parametrize("decoder", list(MODELS))
def test_an_imagined_step_makes_no_host_round_trip(monkeypatch, decoder):
    """On any device: once warm, a step reads no value back to the host (``item``, ``tolist``, ``numpy``,
    ``cpu``) and builds no tensor from host data (``torch.tensor``), the calls that synchronise a GPU."""
    kwargs = MODELS[decoder]
    model = WorldModel(WorldModelConfig(**kwargs, d_model=32, features=8)).eval()
    sim, obs, actions = _step_twice(model, "cpu")

    def forbidden(name):
        def call(*args, **kwargs):
            raise AssertionError(f"an imagined step called {name}")

        return call

    for name in ("item", "tolist", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, forbidden(f"Tensor.{name}"))
    monkeypatch.setattr(torch, "tensor", forbidden("torch.tensor"))
    for _ in range(3):
        obs, reward, others = sim.step(obs, actions)
    assert obs.shape == (64, 5, 4, 4) and reward.shape == (64,) and others.shape == (64, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("decoder", list(MODELS))
def test_an_imagined_step_makes_no_host_synchronisation_on_a_gpu(decoder):
    kwargs = MODELS[decoder]
    model = WorldModel(WorldModelConfig(**kwargs)).cuda().eval()
    sim, obs, actions = _step_twice(model, "cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            obs, _, _ = sim.step(obs, actions)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_sample_names_cells_of_the_wrong_shape():
    dec = MixtureDecoder(8, (5, 2, 3), (1, 1, 1, 1, 1), components=7, hidden=8, scorer=4)
    with pytest.raises(ValueError, match=r"cells must have shape \(B, V, cell_inputs\) = \(3, 6, 5\), got"):
        dec.sample(torch.randn(3, 8), cells=torch.randn(3, 6, 7))
    with pytest.raises(ValueError, match="pass their inputs"):
        dec.sample(torch.randn(3, 8))
