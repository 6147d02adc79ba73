"""retain_freed_memory: glibc's malloc keeps freed memory, so memory freed and allocated again takes no page
faults. Each check runs in a fresh interpreter, since the switch holds for the rest of a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gridmarl_wm.simulation.allocator import can_retain_freed_memory, retain_freed_memory

CHURN = textwrap.dedent(
    """
    import resource
    import numpy as np
    from gridmarl_wm.simulation.allocator import retain_freed_memory, return_freed_memory

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def churn():  # four 8 MiB blocks written and freed, five times: more than glibc keeps by default
        for _ in range(5):
            blocks = [np.ones(1 << 20) for _ in range(4)]
            del blocks

    def count():
        churn()
        before = faults()
        churn()
        return faults() - before

    default = count()
    applied = retain_freed_memory()
    retained = count()
    returned = return_freed_memory()
    print(default, applied, retained, returned, count())
    """
)


@pytest.mark.skipif(not can_retain_freed_memory(), reason="needs glibc's malloc")
def test_retained_memory_takes_no_page_faults_again():
    """And with the starting thresholds back (return_freed_memory), it faults again."""
    out = subprocess.run([sys.executable, "-c", CHURN], capture_output=True, text=True, check=True)
    default, applied, retained, returned, again = out.stdout.split()
    assert applied == returned == "True"
    # 4 x 8 MiB written five times is about 40,000 pages of 4 KiB: the default allocator faults on most
    assert int(default) > 10_000
    assert int(retained) < 500
    assert int(again) > 10_000  # glibc's starting thresholds again


@pytest.mark.parametrize("limit", [0, 1000, -5, 2.5, True, "1G"])
def test_retain_refuses_a_bad_limit(limit):
    with pytest.raises(ValueError, match=r"limit must be an int of at least 1 MiB .*got"):
        retain_freed_memory(limit)
