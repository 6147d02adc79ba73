"""One way for every benchmark to write its figures into benchmarks/RESULTS.md (and the README).

A recorded block sits between ``<!-- KEY:begin -->`` and ``<!-- KEY:end -->`` markers. :func:`record` replaces
the block of that key in RESULTS.md (appending it under ``title`` the first time) and in README.md wherever
the README quotes the same key, so a figure is typed by no one: the script that measured it writes it,
with :func:`provenance` (command, date, machine, library versions, code version) above it.

Benchmarks run as ``python benchmarks/NAME.py``, so they import this module as ``recording``.
``python benchmarks/recording.py --sync`` copies every block of RESULTS.md into the README where the README
has that block's markers (for a block quoted after it was recorded). ``--take OTHER/RESULTS.md KEY ...``
copies blocks, as written, from the RESULTS.md of another checkout (a benchmark run from a clean worktree of
a commit, so that its code version names that commit while work goes on here).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from gridmarl.files import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
README = ROOT / "README.md"


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def code_version() -> str:
    """The git commit of the working tree, with ``+changes`` when its tracked code (the packages or a
    benchmark script) differs from that commit. A copy of the tree on another machine names its commit in
    ``GRIDMARL_CODE_VERSION``: that commit is the one given, and the version says so (and what git reads
    there, if anything: a copy may carry an older commit's git state beside newer files)."""
    given = os.environ.get("GRIDMARL_CODE_VERSION", "").strip()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        code = ["gridmarl", "gridmarl_wm", "benchmarks/*.py"]  # not RESULTS.md, which recording writes
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        if given:
            return f"{given} (not a git checkout: the commit given by GRIDMARL_CODE_VERSION)"
        return "unknown (not a git checkout)"
    here = commit + (" +changes" if dirty else "")
    if given:
        if not (commit.startswith(given) or given.startswith(commit)):
            print(f"recording: GRIDMARL_CODE_VERSION={given} names another commit than git here ({here})",
                  file=sys.stderr)  # fmt: skip
        return f"{given} (the commit given by GRIDMARL_CODE_VERSION; git here reads {here})"
    return here


def machine() -> str:
    """CPU, cores and, where torch sees one, the GPU."""
    text = f"{platform.machine()}, {platform.processor() or 'cpu'}, {cores()} cores"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def versions() -> str:
    """Python and the versions of the main libraries already imported."""
    parts = [f"Python {platform.python_version()}"]
    for name in ("numpy", "torch", "gymnasium", "pettingzoo", "gridmarl"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            parts.append(f"{name} {mod.__version__}")
    return ", ".join(parts)


def provenance(note: str = "") -> str:
    """The lines every recorded block starts with: command, date, machine, versions, code version."""
    command = "python " + shlex.join([Path(sys.argv[0]).as_posix().split(str(ROOT) + "/")[-1], *sys.argv[1:]])
    lines = [
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')})",
        f"Machine: {machine()}; {versions()}",
        f"Code version: {code_version()}",
    ]
    if note:
        lines.append(note)
    return "\n".join(lines)


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- {key}:begin -->", f"<!-- {key}:end -->"


def replace_block(text: str, key: str, body: str) -> str | None:
    """``text`` with every block of ``key`` replaced by ``body``; None if ``text`` has no such block."""
    begin, end = _markers(key)
    if begin not in text:
        return None
    block = f"{begin}\n{body.strip()}\n{end}"
    parts, pos = [], 0
    while (start := text.find(begin, pos)) != -1:
        stop = text.find(end, start)
        if stop == -1:
            raise ValueError(f"the block {key!r} has a begin marker but no end marker")
        parts += [text[pos:start], block]
        pos = stop + len(end)
    return "".join(parts) + text[pos:]


def record(
    key: str, body: str, title: str | None = None, results: Path = RESULTS, readme: Path = README
) -> None:
    """Write ``body`` as the block ``key`` of RESULTS.md (appended under ``## title`` the first time) and
    of README.md where the README quotes that block. ``body`` should start with :func:`provenance`."""
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    new = replace_block(text, key, body)
    if new is None:
        begin, end = _markers(key)
        heading = f"\n\n## {title}\n\n" if title else "\n\n"
        new = text.rstrip() + heading + f"{begin}\n{body.strip()}\n{end}\n"
    atomic_write_text(results, new)
    written = [results.name]
    if readme.exists():
        quoted = replace_block(readme.read_text(), key, body)
        if quoted is not None:
            atomic_write_text(readme, quoted)
            written.append(readme.name)
    print(f"recorded {key!r} in {', '.join(written)}")


def blocks(text: str) -> dict[str, str]:
    """Every recorded block of ``text``: key -> body."""
    found = re.finditer(r"<!-- ([\w.-]+):begin -->\n(.*?)\n<!-- \1:end -->", text, flags=re.S)
    return {m.group(1): m.group(2) for m in found}


def sync_readme(results: Path = RESULTS, readme: Path = README) -> list[str]:
    """Copy every block of ``results`` into ``readme`` where it quotes that key; returns the keys copied."""
    text = readme.read_text()
    copied = []
    for key, body in blocks(results.read_text()).items():
        new = replace_block(text, key, body)
        if new is not None:
            text, copied = new, [*copied, key]
    atomic_write_text(readme, text)
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sync", action="store_true", help="copy RESULTS.md's blocks into README.md's quotes"
    )
    parser.add_argument(
        "--take",
        nargs="+",
        metavar=("RESULTS", "KEY"),
        help="copy the blocks KEY ... (all when none) from another checkout's RESULTS.md",
    )
    args = parser.parse_args()
    if args.take:
        other, *keys = args.take
        found = blocks(Path(other).read_text())
        missing = [k for k in keys if k not in found]
        if missing:
            raise SystemExit(f"--take: {other} has no block {', '.join(map(repr, missing))}")
        for key in keys or list(found):
            record(key, found[key])
    elif args.sync:
        print("copied:", ", ".join(sync_readme()) or "nothing")
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
