"""benchmarks/timing.py: the one definition of imagined and real steps per second."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

torch = pytest.importorskip("torch")
timing = pytest.importorskip("timing")


def test_rates_time_every_run_once_per_round_in_turn_after_a_warm_up_round(monkeypatch):
    calls, clock = [], iter(range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(clock)))
    runs = {"a": (lambda: calls.append("a"), 10), "b": (lambda: calls.append("b"), 30)}
    out = timing.rates(runs, repeats=3)
    assert calls == ["a", "b"] * 4  # the warm-up round, then three timed rounds in turn
    assert out == {"a": 10.0, "b": 30.0}  # every timed run takes one tick of the fake clock


def test_rates_run_what_comes_before_a_run_outside_its_time(monkeypatch):
    """``before`` runs right before each call of its run (the warm-up's too), and the clock does not see it."""
    calls, clock = [], iter(range(1000))

    def tick() -> float:
        calls.append("clock")
        return float(next(clock))

    monkeypatch.setattr(timing.time, "perf_counter", tick)
    runs = {"a": (lambda: calls.append("a"), 10), "b": (lambda: calls.append("b"), 30)}
    out = timing.rates(runs, repeats=2, before={"b": lambda: calls.append("switch")})
    one_round = ["clock", "a", "clock", "switch", "clock", "b", "clock"]
    assert calls == ["a", "switch", "b", *one_round, *one_round]
    assert out == {"a": 10.0, "b": 30.0}


def test_round_robin_calls_every_measure_once_per_round_in_turn_and_takes_medians():
    calls = []
    values = {"a": iter([5.0, 1.0, 3.0]), "b": iter([2.0, 9.0, 4.0])}

    def measure(name):
        def call():
            calls.append(name)
            return next(values[name])

        return call

    out = timing.round_robin({"a": measure("a"), "b": measure("b")}, rounds=3)
    assert calls == ["a", "b"] * 3 and out == {"a": 3.0, "b": 4.0}
    values = {"a": iter([1.0]), "b": iter([2.0])}
    calls.clear()  # with ``before``: right before its measure's call
    timing.round_robin(
        {"a": measure("a"), "b": measure("b")}, rounds=1, before={"b": lambda: calls.append("x")}
    )
    assert calls == ["a", "x", "b"]


def test_an_imagined_run_steps_the_simulator_and_a_real_run_the_vector_env():
    import gridmarl
    from gridmarl_wm.data import CollectConfig, collect
    from gridmarl_wm.model import WorldModel
    from gridmarl_wm.training.trainer import model_config_for

    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=4, num_envs=4, seed=0))
    model = WorldModel(model_config_for(game, data)).eval()
    run, work = timing.imagined_run(model, game, batch=8, steps=3, device="cpu")
    assert work == 24
    run()
    run, work = timing.real_run({}, batch=8, steps=5)
    assert work == 40
    run()
