"""rep_load.py BUILD_DIR - anchor-reputation throughput (driven by bench/reputation.sh).

Sets up the same world as the integration tests (tests/integration/repfixtures.py):
PostgreSQL, a key server, REPORTERS anchored reporter domains with signing keys, NSD
serving their anchors, anchor-reputation.  Then:

  1. reports ingested per second: REPORTS signed reports (signed beforehand, not timed)
     POSTed over 8 keep-alive HTTPS connections, one per group of reporters; each report
     verified against its domain's pin and committed before the answer
  2. queries per second over HTTPS keep-alive: wrk GET /v1/query?ip=... over SUBJECTS
     scored subjects, then nginx serving the very same answer bodies as static files
     (same TLS certificate, same workers), in the same run; rates, ratio, p99 latencies
"""

import os
import random
import statistics
import re
import subprocess
import threading
import time
from pathlib import Path

import repworld  # first: it puts the integration tests' helpers on the path
import repfixtures as rx

SRC = repworld.SRC

REPORTERS = int(os.environ.get("BENCH_REPORTERS", "16"))
REPORTS = int(os.environ.get("BENCH_REPORTS", "4000"))
SUBJECTS = int(os.environ.get("BENCH_SUBJECTS", "500"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNS = int(os.environ.get("BENCH_CONNS", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def ips(n):
    return [f"10.{i // 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(n)]


def ingest(world, rep):
    labels = sorted(world.reporters)
    subjects = ips(SUBJECTS)
    rnd = random.Random(1)
    jobs = {label: [] for label in labels}
    for k in range(REPORTS):
        label = labels[k % len(labels)]
        r = world.reporters[label]
        _, text = rx.signed_report(r, [f"ip:{rnd.choice(subjects)}"], id=f"bench-{k}")
        jobs[label].append(text)
    groups = [labels[i::8] for i in range(8)]
    statuses = []
    lock = threading.Lock()

    def worker(group):
        local = []
        for label in group:
            conn = rep.connection(world.reporters[label].src)
            for text in jobs[label]:
                local.append(rx.post_report(rep, text, conn=conn).status)
            conn.close()
        with lock:
            statuses.extend(local)

    threads = [threading.Thread(target=worker, args=(g,)) for g in groups if g]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    ok = statuses.count(201)
    print(f"reports: {ok} of {len(statuses)} accepted in {elapsed:.2f} s over 8 connections: "
          f"{ok / elapsed:.0f} reports/s (each JWS-verified and committed)")
    return subjects


def parse_wrk(path):
    text = Path(path).read_text()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rate, float(m.group(1)) * scale, int(errors.group(1)) if errors else 0


def queries(world, rep, subjects, work):
    www = work / "www" / "q"
    www.mkdir(parents=True)
    rep_paths, ng_paths, sizes = [], [], []
    for ip in subjects:
        r = rx.request(rep, "GET", f"/v1/query?ip={ip}")
        assert r.status == 200, r.body
        (www / ip).write_bytes(r.body)
        rep_paths.append(f"/v1/query?ip={ip}")
        ng_paths.append(f"/q/{ip}")
        sizes.append(len(r.body))
    (work / "rep-paths.txt").write_text("\n".join(rep_paths) + "\n")
    (work / "ng-paths.txt").write_text("\n".join(ng_paths) + "\n")
    port = anchorlib_free_port()
    ngdir = work / "nginx"
    ngdir.mkdir()
    (ngdir / "nginx.conf").write_text(f"""
worker_processes 1;
pid {ngdir}/nginx.pid;
error_log {ngdir}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
	access_log off;
	keepalive_requests 1000000;
	ssl_session_cache shared:SSL:1m;
	ssl_protocols TLSv1.2 TLSv1.3;
	default_type application/json;
	server {{
		listen 127.0.0.1:{port} ssl;
		ssl_certificate {world.tls.cert};
		ssl_certificate_key {world.tls.key};
		root {work}/www;
	}}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", str(ngdir / "nginx.conf"), "-p", str(ngdir)])
    time.sleep(0.5)
    lua = work / "paths.lua"
    lua.write_text("""
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local n = 0
request = function()
	n = n + 1
	return wrk.format("GET", paths[(n % #paths) + 1])
end
""")

    def run_wrk(url, paths, out, secs):
        env = dict(os.environ, PATHS_FILE=str(paths))
        with open(out, "w") as f:
            subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{CONNS}", f"-d{secs}s",
                            "--latency", "-s", str(lua), url], stdout=f, env=env, check=True)

    def measure(url, paths, pids, secs, out):
        c0 = cpu_seconds(pids)
        run_wrk(url, paths, out, secs)
        c1 = cpu_seconds(pids)
        rate, p99, err = parse_wrk(out)
        n = max(1.0, rate * secs)
        return rate, p99, err, (c1 - c0) * 1e6 / n

    try:
        # Both servers on CPU 0, every thread; wrk on CPU 1.  Pinned after start so that
        # threads started so far are covered (children inherit the mask).
        pin(0, [rep.proc.pid, nginx.pid])
        print(f"queries: wrk -t1 -c{CONNS} -d{DURATION}s over {len(subjects)} subjects, "
              f"HTTPS keep-alive; answers {min(sizes)}..{max(sizes)} bytes; servers pinned "
              f"to CPU 0 (one worker each), wrk to CPU 1; {ROUNDS} interleaved rounds")
        run_wrk(rep.base_url, work / "rep-paths.txt", "/dev/null", 2)
        run_wrk(f"https://127.0.0.1:{port}", work / "ng-paths.txt", "/dev/null", 2)
        perf = None
        if os.environ.get("BENCH_PERF"):  # where the daemon spends its time, for tuning
            perf = subprocess.Popen(["perf", "record", "-g", "-o", str(work / "perf.data"),
                                     "-p", str(rep.proc.pid)], stderr=subprocess.DEVNULL)
            run_wrk(rep.base_url, work / "rep-paths.txt", "/dev/null", DURATION)
            perf.send_signal(2)
            perf.wait()
            subprocess.run(f"perf report -i {work / 'perf.data'} --no-children --stdio "
                           f"2>/dev/null | grep -v '^#' | grep '%' | head -60", shell=True)
        ours, peer = [], []
        print(f"{'':8}{'anchor-reputation':>34}   {'nginx (same bodies)':>34}")
        print(f"{'round':8}{'req/s':>10}{'p99 ms':>8}{'us CPU/req':>11}{'non2xx':>7}   "
              f"{'req/s':>10}{'p99 ms':>8}{'us CPU/req':>11}{'non2xx':>7}{'ratio':>7}")
        for r in range(ROUNDS):
            a = measure(rep.base_url, work / "rep-paths.txt", [rep.proc.pid],
                        DURATION, work / "wrk-rep.txt")
            b = measure(f"https://127.0.0.1:{port}", work / "ng-paths.txt",
                        [nginx.pid], DURATION, work / "wrk-ng.txt")
            ours.append(a)
            peer.append(b)
            print(f"{r + 1:<8d}{a[0]:10.0f}{a[1]:8.2f}{a[3]:11.1f}{a[2]:7d}   "
                  f"{b[0]:10.0f}{b[1]:8.2f}{b[3]:11.1f}{b[2]:7d}{a[0] / b[0]:7.2f}")
    finally:
        nginx.terminate()
        nginx.wait()
    med = [statistics.median(x[i] for x in ours) for i in range(4)]
    pmed = [statistics.median(x[i] for x in peer) for i in range(4)]
    ratios = sorted(a[0] / b[0] for a, b in zip(ours, peer))
    print(f"median  {med[0]:10.0f}{med[1]:8.2f}{med[3]:11.1f}{'':7}   "
          f"{pmed[0]:10.0f}{pmed[1]:8.2f}{pmed[3]:11.1f}")
    print(f"ratio anchor-reputation/nginx (same round): median "
          f"{statistics.median(ratios):.2f}, range {ratios[0]:.2f}..{ratios[-1]:.2f}; "
          f"p99 {med[1]:.2f} vs {pmed[1]:.2f} ms; CPU/req {med[3]:.1f} vs {pmed[3]:.1f} us")


def pin(cpu, pids):
    subprocess.run(["python3", str(SRC / "bench" / "cpu.py"), "pin", str(cpu)]
                   + [str(p) for p in pids], check=True)


def cpu_seconds(pids):
    out = subprocess.run(["python3", str(SRC / "bench" / "cpu.py"), "cpu"]
                         + [str(p) for p in pids], check=True, capture_output=True, text=True)
    return float(out.stdout)


def anchorlib_free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    labels = [f"b{i}" for i in range(REPORTERS)]
    with repworld.world("anchor-bench-rep-", "bench_rep", labels,
                        f"== setting up: PostgreSQL, key server, {REPORTERS} anchored reporter "
                        f"domains, NSD, anchor-reputation") as w:
        world, work = w.world, w.work
        # Ingest waits on the database (each report is committed before the answer): it
        # gets 8 HTTP threads; the query comparison then runs with as many threads as
        # nginx has workers.
        rep = rx.Reputation(world, world.work / "rep", w.db,
                            {"log_level": "warning", "http_threads": "8",
                             "db_pool_size": "16", "max_connections": "4096",
                             # the load comes from one address
                             "max_connections_per_ip": "4096"}).start()
        print(f"== ingest: {REPORTS} reports from {REPORTERS} domains about {SUBJECTS} "
              f"subjects, anchor-reputation with 8 HTTP threads")
        subjects = ingest(world, rep)
        rep.stop()
        rep.params["http_threads"] = "1"
        rep.start()
        print("== queries: anchor-reputation with 1 HTTP thread, nginx with 1 worker")
        queries(world, rep, subjects, work)


if __name__ == "__main__":
    main()
