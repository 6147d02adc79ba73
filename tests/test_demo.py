"""The main job's smoke-test budget produces a loadable model, a report and plots."""

import json

import numpy as np
import pytest

from gridmarl_wm import WorldModel
from gridmarl_wm.cli import main
from gridmarl_wm.planning import model_gap


def test_quick_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["demo", "--quick", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    model = WorldModel.load(out / "model.pt")
    assert model.game.n_agents == 2 and model.cfg.variant == "direct"
    assert model.cfg.decoder == "mixture" and model.cfg.mixture_scorer > 0  # the main job's model
    report = json.loads((out / "report.json").read_text())
    assert report["exhaustive"]["n_transitions"] == 300 * 25
    assert 0 <= report["exhaustive"]["tv_mean"] <= 1
    assert len(report["open_loop"]["true_opponent_actions"]["position_match"]) == 20
    assert set(report["planning"]) == {"random", "greedy"}
    for row in report["planning"].values():
        assert set(row) == {"greedy ego (no planning)", "random shooting", "CEM", "MCTS"}
        greedy = np.array(row["greedy ego (no planning)"]["returns"]).ravel()
        for name in ("random shooting", "CEM", "MCTS"):
            assert np.shape(row[name]["learned"]["returns"]) == (2, 2)  # 2 seeds x 2 games
            assert np.isfinite(row[name]["exact"]["mean"])
            # one definition of the model gap: the ratio of the mean returns (not a mean of ratios), its
            # interval over the paired games
            learned, exact = (np.array(row[name][k]["returns"]).ravel() for k in ("learned", "exact"))
            expected = model_gap(learned, exact)
            assert np.allclose([row[name]["gap"], row[name]["gap_ci95"]], expected, equal_nan=True)
            if exact.mean() > 0:
                assert np.isclose(row[name]["gap"], learned.mean() / exact.mean())
            diff = row[name]["exact"]["vs_greedy"]  # paired with the greedy ego on the same games
            assert np.isclose(diff["mean"], (exact - greedy).mean())
    text = (out / "report.md").read_text()
    assert "| greedy | CEM |" in text and text.strip() in printed
    assert "World model: mixture decoder, cell scorer 16" in text and "| none applied |" in text
    assert "Its figures are not measurements" in text  # --quick says so
    assert "What this table does not settle" in text  # 4 games cannot give a gap to within 0.05
    for png in ("losses.png", "tv_histogram.png", "open_loop.png", "predictions.png"):
        assert (out / png).stat().st_size > 5000


def test_findings_name_what_the_table_does_not_settle():
    from gridmarl_wm.demo import _findings

    def row(gap, half, diff):
        side = {"vs_greedy": {"mean": diff, "ci95": 1.0}, "returns": [[18.0, 17.0]] * 50}  # 100 games
        return {"learned": side, "exact": side, "gap": gap, "gap_ci95": half}

    plan = {
        "greedy": {
            "greedy ego (no planning)": {"mean": 16.0, "ci95": 1.0},
            "A": row(1.2, 0.03, 3.0),  # settled: tight, above 1, beats greedy
            "B": row(0.8, 0.1, 0.5),  # wide, below 1, not above greedy
        }
    }
    text = "\n".join(_findings(plan))
    assert "B vs greedy (±0.100)" in text and "A vs greedy" not in text.split("Gaps whose")[0]
    assert "about 400 games" in text  # twice as wide as ±0.05 at 100 games: four times the games
    assert "lies below 1" in text and "B vs greedy (0.800 ± 0.100)" in text
    assert "contains 1" not in text  # neither interval contains 1
    assert "B with the learned simulator vs greedy (+0.50 ± 1.00)" in text
    assert "A with" not in text


def test_demo_retain_memory_switches_the_allocator_first_and_is_refused_without_one(
    tmp_path, monkeypatch, capsys
):
    """``demo --retain-memory`` asks the allocator to keep freed memory before the job starts, and where
    the C library has no such switch it stops with an error that names the option, having done nothing."""
    import gridmarl_wm.demo
    from gridmarl_wm.simulation import allocator

    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append("retain") or True)
    monkeypatch.setattr(gridmarl_wm.demo, "run_demo", lambda out, cfg, progress: calls.append("demo"))
    main(["demo", "--quick", "--out", str(tmp_path / "a"), "--retain-memory", "--no-progress"])
    assert calls == ["retain", "demo"]
    main(["demo", "--quick", "--out", str(tmp_path / "b"), "--no-progress"])
    assert calls == ["retain", "demo", "demo"]  # not asked for: not switched
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: False)  # not glibc
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--out", str(tmp_path / "c"), "--retain-memory", "--no-progress"])
    assert exit_info.value.code == 2 and "--retain-memory needs glibc's malloc" in capsys.readouterr().err
    assert calls == ["retain", "demo", "demo"]
