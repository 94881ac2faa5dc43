"""Monitoring (docs/monitoring.md): the sample Prometheus configuration and alert rules
pass promtool, every metric an alert names is exported by a running daemon, every
metric a daemon exports is documented, and the health gauges say "up" on a healthy
stack.  The key server, the reputation service and the relay's control API run for
real on loopback; /metrics is fetched over HTTPS as Prometheus would."""

import re
import shutil
import ssl
import subprocess
import urllib.request

import pytest

import anchorlib
import repfixtures as rx
from relayfixtures import make_relay  # noqa: F401

RULES = anchorlib.SRC / "deploy" / "prometheus" / "anchor-alerts.yml"
CONFIG = anchorlib.SRC / "deploy" / "prometheus" / "anchor.yml"
DOC = anchorlib.SRC / "docs" / "monitoring.md"


def scrape(base_url, ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(base_url + "/metrics", context=ctx, timeout=30) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def families(text):
    """{family: type} from the # TYPE lines, and every sample's family."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or (base in types and types[base] == "histogram"), (
            f"{name} has no # TYPE line")
    return types


def value(text, sample):
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert m, f"{sample} not exported:\n{text}"
    return float(m.group(1))


@pytest.fixture
def stack(pg, db, operator_token, request, make_relay, tls):
    w = rx.build_world(pg, db, operator_token, request, ["mon"])
    rep = rx.Reputation(w, w.work / "rep", db).start()
    relay = make_relay(control=True, dns_server=w.nsd.resolver, keyserver_cacert=tls.ca)
    return {
        "anchor-keyserver": scrape(w.ks.base_url, w.tls.ca),
        "anchor-reputation": scrape(rep.base_url, w.tls.ca),
        "anchor-relay": scrape(relay.control_url, tls.ca),
    }


def check_health_gauges(stack):
    ks, rep, relay = stack["anchor-keyserver"], stack["anchor-reputation"], stack["anchor-relay"]
    assert value(ks, "anchor_database_up") == 1
    assert value(ks, "anchor_signer_up") == 1
    assert value(ks, "anchor_signer_failures_total") == 0
    assert value(ks, "anchor_log_append_failures_total") == 0
    assert value(rep, "anchor_database_up") == 1
    assert value(relay, 'anchor_relay_queue_messages{queue="in"}') == 0
    assert value(relay, 'anchor_relay_queue_messages{queue="out"}') == 0


def check_alerts_name_exported_metrics(stack):
    exported = set()
    for text in stack.values():
        exported |= set(families(text))
    named = set(re.findall(r"\banchor_[a-z_]+", RULES.read_text()))
    assert named, "the rules name no metric"
    missing = named - exported
    assert not missing, f"alert rules name metrics no daemon exports: {sorted(missing)}"


def check_every_metric_documented(stack):
    doc = DOC.read_text()
    for daemon, text in stack.items():
        for name in families(text):
            assert f"`{name}" in doc, f"{daemon} exports {name}, not in docs/monitoring.md"


def promtool_or_skip():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus) is not installed: deploy/install-deps.sh")
    return promtool


def test_promtool_rules_and_config():
    promtool = promtool_or_skip()
    for args in (["check", "rules", RULES], ["check", "config", CONFIG]):
        r = subprocess.run([promtool, *map(str, args)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr


def check_exposition(stack):
    """The exposition itself, as Prometheus's own linter reads it."""
    promtool = promtool_or_skip()
    for daemon, text in stack.items():
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"{daemon}:\n{r.stdout}{r.stderr}"


def test_running_stack(stack):
    """One stack (it takes a while to start) for every check against live daemons."""
    check_health_gauges(stack)
    check_alerts_name_exported_metrics(stack)
    check_every_metric_documented(stack)
    check_exposition(stack)
