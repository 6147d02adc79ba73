"""benchmarks/recording.py: the one way benchmarks write their figures into RESULTS.md and the README."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import recording


def test_record_appends_then_replaces_and_updates_the_readme_quote(tmp_path):
    results, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    readme.write_text("intro\n<!-- speed:begin -->\nold figure\n<!-- speed:end -->\noutro\n")

    recording.record("speed", "| a | 1 |", title="Speed", results=results, readme=readme)
    text = results.read_text()
    assert "kept" in text and "## Speed" in text
    assert "<!-- speed:begin -->\n| a | 1 |\n<!-- speed:end -->" in text
    assert readme.read_text() == "intro\n<!-- speed:begin -->\n| a | 1 |\n<!-- speed:end -->\noutro\n"

    recording.record("speed", "| a | 2 |", title="Speed", results=results, readme=readme)
    text = results.read_text()
    assert text.count("## Speed") == 1 and "| a | 1 |" not in text and "| a | 2 |" in text
    assert "| a | 2 |" in readme.read_text()


def test_a_readme_without_the_block_is_left_alone(tmp_path):
    results, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    readme.write_text("nothing quoted\n")
    recording.record("k", "body", results=results, readme=readme)
    assert readme.read_text() == "nothing quoted\n"
    assert "<!-- k:begin -->\nbody\n<!-- k:end -->" in results.read_text()


def test_a_block_without_its_end_marker_is_refused(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("<!-- k:begin -->\nhalf a block\n")
    with pytest.raises(ValueError, match="no end marker"):
        recording.record("k", "body", results=results, readme=tmp_path / "none.md")
    assert results.read_text() == "<!-- k:begin -->\nhalf a block\n"


def test_provenance_names_command_date_machine_and_code_version():
    text = recording.provenance("Median of 3 runs.")
    lines = text.splitlines()
    assert lines[0].startswith("Command: `python ")
    assert lines[1].startswith("Machine: ") and "cores" in lines[1] and "Python " in lines[1]
    assert lines[2].startswith("Code version: ")
    assert lines[3] == "Median of 3 runs."


def test_sync_copies_recorded_blocks_into_the_readme_quotes(tmp_path):
    results, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    results.write_text("<!-- a:begin -->\nA 1\n<!-- a:end -->\n<!-- b:begin -->\nB 2\nB 3\n<!-- b:end -->\n")
    readme.write_text("x\n<!-- b:begin -->\n<!-- b:end -->\ny\n")
    assert recording.blocks(results.read_text()) == {"a": "A 1", "b": "B 2\nB 3"}
    assert recording.sync_readme(results, readme) == ["b"]
    assert readme.read_text() == "x\n<!-- b:begin -->\nB 2\nB 3\n<!-- b:end -->\ny\n"
