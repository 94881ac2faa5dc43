#!/usr/bin/env python3
"""CPU pinning and CPU accounting of process trees, for the shell benchmarks; the
command line of benchcpu.py, which the Python benches import.

pin CPU PID...   pin every thread of each PID and of all its descendants to CPU
                 (children started later inherit it)
cpu PID...       print the CPU seconds (user + system) used so far by the trees of
                 the PIDs: every live process, plus what each has reaped of its
                 exited children (a PostgreSQL backend that ended is counted by the
                 postmaster)

The benchmarks read `cpu` before and after a run and divide the difference by the
number of requests: the server's CPU time per request, whatever the machine's other
load does to the wall clock.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchcpu  # noqa: E402


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("pin", "cpu"):
        sys.exit("usage: cpu.py pin CPU PID... | cpu.py cpu PID...")
    if sys.argv[1] == "pin":
        cpu = int(sys.argv[2])
        for root in sys.argv[3:]:
            try:
                benchcpu.pin_tree(int(root), cpu)
            except OSError:
                pass  # gone meanwhile
        return
    print(f"{sum(benchcpu.tree_cpu(int(root)) for root in sys.argv[2:]):.3f}")


if __name__ == "__main__":
    main()
