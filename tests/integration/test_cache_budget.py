"""Caches are bounded in bytes and say so in /metrics (settings answer_cache_bytes of the
key server and of anchor-reputation, dns_cache_bytes of the reputation DNS zone): far
more distinct questions than a budget holds leave each cache's charged bytes at or under
its budget, with the budget and the entries exported beside them."""

import re
import socket
import struct

import pytest

import dnsfixtures as dx
import ksfixtures as kf
import repfixtures as rx

BUDGET = 64 * 1024  # the smallest budget the settings accept


def samples(client, name):
    """{label value: sample} of a metric labelled cache="..." in /metrics."""
    r = client.get("/metrics")
    assert r.status == 200, r.body
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(rf'^{name}{{cache="([a-z_]+)"}} (\S+)$', r.text, re.M)}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def test_keyserver_answers_stay_within_their_budget(make_keyserver, operator_token,
                                                    tmp_path):
    ks = make_keyserver(extra={"answer_cache_bytes": str(BUDGET)})
    c = ks.client()
    d = kf.register_domain(ks, tmp_path, kf.new_domain_name("budget"), operator_token.token)
    for i in range(3):
        kf.enroll_new(c, d, f"u{i}@{d.name}")
    assert samples(c, "anchor_keyserver_cache_max_bytes") == {"answers": BUDGET}
    # Distinct cacheable answers: the feed read from every offset and page size.
    conn = c.connection()
    n = 0
    for since in range(4):
        for limit in range(1, 120):
            r = c.get(f"/v1/domains/{d.name}/feed?since={since}&limit={limit}", conn=conn)
            assert r.status == 200, (r.status, r.body)
            n += 1
            held = samples(c, "anchor_keyserver_cache_bytes")["answers"] if n % 50 == 0 \
                else 0
            assert held <= BUDGET, held
    held = samples(c, "anchor_keyserver_cache_bytes")["answers"]
    entries = samples(c, "anchor_keyserver_cache_entries")["answers"]
    assert 0 < held <= BUDGET, held
    assert 0 < entries < n, (entries, n)
    # What is kept is still served from memory.
    hits = kf.metric(c, "anchor_keyserver_cache_hits_total")
    r = c.get(f"/v1/domains/{d.name}/feed?since=3&limit=119")
    assert r.status == 200 and kf.metric(c, "anchor_keyserver_cache_hits_total") > hits


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, ["b1"])
    w.dns_port = dx.free_port()
    w.rep = rx.Reputation(w, w.work / "rep", db, {
        "answer_cache_bytes": str(BUDGET), "dns_cache_bytes": str(BUDGET),
        "dns_listen": f"127.0.0.1:{w.dns_port}", "dns_zone": "rep.example",
        "dns_ttl": "60s", "answer_cache_ttl": "300s"}).start()
    return w


def dns_a_query(sock, port, name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    sock.sendto(q, ("127.0.0.1", port))
    data, _ = sock.recvfrom(4096)
    assert struct.unpack(">H", data[:2])[0] == qid
    return data[3] & 0x0F  # rcode


def test_reputation_caches_stay_within_their_budgets(world):
    rep = world.rep
    c = rep.client()
    assert samples(c, "anchor_rep_cache_max_bytes") == {"answers": BUDGET, "dns": BUDGET}
    rss0 = rss_kb(rep.proc.pid)
    conn = rep.connection()
    n = 1500
    for i in range(n):
        r = rx.request(rep, "GET", f"/v1/query?ip=10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                       conn=conn)
        assert r.status == 200, (r.status, r.body)
        if i % 250 == 0:
            assert samples(c, "anchor_rep_cache_bytes")["answers"] <= BUDGET
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    for i in range(n):
        name = f"{i % 256}.{i // 256 % 256}.1.10.rep.example"
        assert dns_a_query(sock, world.dns_port, name, i & 0xFFFF) in (0, 3)  # NOERROR, NX
    sock.close()
    held = samples(c, "anchor_rep_cache_bytes")
    entries = samples(c, "anchor_rep_cache_entries")
    for cache in ("answers", "dns"):
        assert 0 < held[cache] <= BUDGET, (cache, held)
        assert 0 < entries[cache] < n, (cache, entries)
    assert "key_status" in entries
    # Informative: the process grew by far less than the questions' answers would take.
    print(f"RSS {rss0} kB -> {rss_kb(rep.proc.pid)} kB after {2 * n} distinct questions")
