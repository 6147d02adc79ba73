"""``gridmarl_wm.viewing.plots``: every picture is written atomically: a failing write leaves the old file whole."""

from __future__ import annotations

import numpy as np
import pytest

from gridmarl_wm.viewing import plots

PLOTS = {
    "tv_histogram": lambda out: plots.plot_tv_histogram(np.linspace(0, 0.5, 50), out),
    "open_loop": lambda out: plots.plot_open_loop(
        {"real_opponents": {"position_match": [1.0, 0.9], "reward_error": [0.0, 0.1]}}, out
    ),
    "switch_recovery": lambda out: plots.plot_switch_recovery({"types": [0.5, 0.3, 0.2]}, out),
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_a_plot_that_fails_half_way_leaves_the_old_file(tmp_path, monkeypatch, name):
    from matplotlib.figure import Figure

    out = tmp_path / f"{name}.png"
    PLOTS[name](out)
    good = out.read_bytes()
    assert good.startswith(b"\x89PNG") and len(good) > 5000

    def half_then_fail(self, target, **kwargs):
        if hasattr(target, "write"):
            target.write(b"\x89PNG half")
        else:
            with open(target, "wb") as f:
                f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        PLOTS[name](out)
    assert out.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
