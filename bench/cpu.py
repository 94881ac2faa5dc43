#!/usr/bin/env python3
"""CPU pinning and CPU accounting of process trees, for the benchmarks.

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

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid):
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children(p)
    return seen


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17
    return sum(int(x) for x in fields[11:15]) / TICK


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("pin", "cpu"):
        sys.exit("usage: cpu.py pin CPU PID... | cpu.py cpu PID...")
    if sys.argv[1] == "pin":
        cpu = int(sys.argv[2])
        for root in sys.argv[3:]:
            for p in tree(int(root)):
                try:
                    for tid in os.listdir(f"/proc/{p}/task"):
                        os.sched_setaffinity(int(tid), {cpu})
                except OSError:
                    pass
        return
    total = sum(cpu_seconds(p) for root in sys.argv[2:] for p in tree(int(root)))
    print(f"{total:.3f}")


if __name__ == "__main__":
    main()
