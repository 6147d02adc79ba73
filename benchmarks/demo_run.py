"""The main job as a user runs it, timed, with its report recorded in RESULTS.md and the README.

    python benchmarks/demo_run.py --out runs/demo --record     # the defaults of `gridmarl-wm demo`
    python benchmarks/demo_run.py --out runs/demo_quick --quick

Runs :func:`gridmarl_wm.demo.run_demo` (what ``gridmarl-wm demo`` runs) and records its wall time and
report (``report.md``) as the block ``demo`` (``demo_quick`` with ``--quick``), so the README's figures of
the main job are the ones that run wrote.
"""

from __future__ import annotations

import argparse
import time

import torch
from recording import provenance, record

from gridmarl_wm.demo import DemoConfig, report_markdown, run_demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    start = time.perf_counter()
    report = run_demo(args.out, cfg, progress=False)
    minutes = (time.perf_counter() - start) / 60
    what = "`--quick` (a smoke test: its figures are not measurements)" if args.quick else "the defaults"
    body = "\n".join(
        [
            provenance(f"`gridmarl-wm demo` with {what}: {minutes:.1f} minutes in all on this machine."),
            "",
            report_markdown(report).replace("# gridmarl-wm demo report", "").strip(),
        ]
    )
    print(body)
    if args.record:
        record("demo_quick" if args.quick else "demo", body, title="The main job (`gridmarl-wm demo`)")


if __name__ == "__main__":
    main()
