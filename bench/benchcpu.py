"""benchcpu.py - pin a server's process tree to a CPU and read the CPU time it used, for
the Python benches (bench/relay_load.py, bench/relay_tls_load.py)."""

import os

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """(ppid, user+system seconds of the process, plus of its reaped children)."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()  # after "pid (comm) "
    ppid = int(fields[1])
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ppid, ticks / TICK


def tree(pid, exclude=()):
    """pid and every living descendant, but not the subtrees of the pids in exclude."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(_stat(int(d))[0], []).append(int(d))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in exclude:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(pid, exclude=()):
    """Seconds of CPU used by pid's tree (less the subtrees of exclude): the living
    processes' own time and what their reaped children used (cutime/cstime), so nothing
    is counted twice."""
    total = 0.0
    for p in tree(pid, exclude):
        try:
            total += _stat(p)[1]
        except OSError:
            pass  # gone since the listing: its time is in its parent's cutime
    return total


def pin_tree(pid, cpu):
    """Every thread of pid's tree onto cpu; children started later inherit it."""
    for p in tree(pid):
        for t in os.listdir(f"/proc/{p}/task"):
            try:
                os.sched_setaffinity(int(t), {cpu})
            except OSError:
                pass
