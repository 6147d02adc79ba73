"""benchmarks/recording.py: the one way benchmarks write their figures into RESULTS.md and the README."""

from __future__ import annotations

import os
import stat
import subprocess
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


def test_every_quote_of_a_key_in_the_readme_is_replaced(tmp_path):
    results, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    quote = "<!-- speed:begin -->\nold\n<!-- speed:end -->"
    other = "<!-- other:begin -->\nkept\n<!-- other:end -->"
    readme.write_text(f"a\n{quote}\nb\n{other}\nc\n{quote}\nd\n")
    recording.record("speed", "new", results=results, readme=readme)
    new = "<!-- speed:begin -->\nnew\n<!-- speed:end -->"
    assert readme.read_text() == f"a\n{new}\nb\n{other}\nc\n{new}\nd\n"
    # sync_readme goes through the same replacement.
    readme.write_text(f"{quote}\n{quote}\n")
    assert recording.sync_readme(results, readme) == ["speed"]
    assert readme.read_text() == f"{new}\n{new}\n"
    # A later quote without its end marker is refused, and nothing is written.
    readme.write_text(f"{quote}\n<!-- speed:begin -->\nhalf\n")
    with pytest.raises(ValueError, match="no end marker"):
        recording.record("speed", "newer", results=results, readme=readme)
    assert readme.read_text() == f"{quote}\n<!-- speed:begin -->\nhalf\n"


def test_an_edited_benchmark_script_counts_as_changed_code(tmp_path, monkeypatch, capsys):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    monkeypatch.delenv("GRIDMARL_CODE_VERSION", raising=False)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "speed.py").write_text("N = 1\n")
    (tmp_path / "benchmarks" / "RESULTS.md").write_text("# Benchmark results\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    monkeypatch.setattr(recording, "ROOT", tmp_path)
    assert not recording.code_version().endswith("+changes")
    (tmp_path / "notes.txt").write_text("edited, but not code\n")
    (tmp_path / "benchmarks" / "RESULTS.md").write_text("what an earlier benchmark recorded\n")
    assert not recording.code_version().endswith("+changes")
    (tmp_path / "benchmarks" / "speed.py").write_text("N = 2\n")
    assert recording.code_version().endswith(" +changes")
    # a copy whose git state is older than its files names the commit it was given, and what git reads
    monkeypatch.setenv("GRIDMARL_CODE_VERSION", "fedcba9876")
    here = recording.code_version()
    assert here.startswith("fedcba9876 (the commit given by GRIDMARL_CODE_VERSION; git here reads ")
    assert here.endswith(" +changes)")
    assert "names another commit than git here" in capsys.readouterr().err
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout
    monkeypatch.setenv("GRIDMARL_CODE_VERSION", commit[:7])  # the same commit: no warning
    assert recording.code_version().startswith(commit[:7] + " (the commit given by")
    assert capsys.readouterr().err == ""


def test_a_copy_without_git_takes_its_commit_from_the_environment_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above it either
    monkeypatch.delenv("GRIDMARL_CODE_VERSION", raising=False)
    assert recording.code_version() == "unknown (not a git checkout)"
    monkeypatch.setenv("GRIDMARL_CODE_VERSION", "0123456789")
    assert (
        recording.code_version()
        == "0123456789 (not a git checkout: the commit given by GRIDMARL_CODE_VERSION)"
    )


def test_recording_writes_with_the_usual_mode_and_imports_no_torch(tmp_path):
    old = os.umask(0o022)
    try:
        recording.record("k", "body", results=tmp_path / "RESULTS.md", readme=tmp_path / "none.md")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "RESULTS.md").st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]
    code = "import sys; sys.path.insert(0, 'benchmarks'); import recording; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
