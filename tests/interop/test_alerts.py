"""Drift alerts reach a real Prometheus Alertmanager and a webhook receiver that checks
their signatures with the Standard Webhooks reference library (PyPI ``standardwebhooks``).

One ``ballast serve`` on a copy of the fraud model with its reference beside it, rows windows
of 400, and one rule: a feature's PSI over 0.5 fires at once. Same-distribution traffic
raises nothing; shifting ``amount_log`` fires one alert naming that feature, which arrives
signed at the webhook and appears in Alertmanager (``GET /api/v2/alerts``) with the rule's
labels, and in ``ballast alerts``; same-distribution traffic again resolves it.

Environment:

    BALLAST_BIN        the ballast binary (as in test_repository.py)
    ALERTMANAGER_BIN   Alertmanager (default: prometheus-alertmanager or alertmanager on PATH;
                       Debian's package `prometheus-alertmanager`)

Nothing is skipped: without Alertmanager the run fails saying what to install.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from test_repository import EXAMPLES, REPO_ROOT, Server, _binary, _free_ports, servers  # noqa: F401

SECRET = "whsec_" + base64.b64encode(b"ballast-interop-webhook-key-0123").decode()
TIMEOUT_S = 60.0


def _alertmanager_bin() -> str:
    if os.environ.get("ALERTMANAGER_BIN"):
        return os.environ["ALERTMANAGER_BIN"]
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no Alertmanager: apt-get install prometheus-alertmanager, or set ALERTMANAGER_BIN")


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait(what: str, probe, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def alertmanager(tmp_path):
    (port,) = _free_ports(1)
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: devnull\nreceivers:\n  - name: devnull\n")
    log = open(tmp_path / "alertmanager.log", "wb")
    proc = subprocess.Popen(
        [
            _alertmanager_bin(),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            pytest.fail(f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    _wait("alertmanager to be ready", ready)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def webhook():
    """A receiver that verifies every delivery with the reference library."""
    received: list[dict] = []
    rejected: list[str] = []
    verifier = Webhook(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                received.append(verifier.verify(body, headers))
                # The check is real: the same delivery with one byte changed fails it.
                try:
                    verifier.verify(body.replace(b"alert", b"alerT", 1), headers)
                    rejected.append("a tampered body verified")
                except WebhookVerificationError:
                    pass
                self.send_response(204)
            except WebhookVerificationError as e:
                rejected.append(str(e))
                self.send_response(400)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, rejected
    server.shutdown()


def _rows() -> list[list[float]]:
    with open(REPO_ROOT / "examples" / "data" / "fraud_sample.csv") as f:
        return [[float(x) for x in r[:12]] for r in list(csv.reader(f))[1:]]


def test_a_drifted_feature_alerts_alertmanager_and_a_signed_webhook_then_resolves(
    tmp_path, servers, alertmanager, webhook  # noqa: F811
):
    hook_url, received, rejected = webhook
    repo = tmp_path / "models"
    (repo / "fraud").mkdir(parents=True)
    shutil.copy(EXAMPLES / "fraud" / "config.toml", repo / "fraud")
    shutil.copytree(EXAMPLES / "fraud" / "1", repo / "fraud" / "1")
    shutil.copy(REPO_ROOT / "examples" / "data" / "fraud_sample.csv", repo / "fraud" / "1" / "reference.csv")
    config = tmp_path / "ballast.toml"
    config.write_text(
        f"""
[monitor]
window_rows = 400
min_rows = 100
window_secs = 3600

[[alert]]
name = "fraud-feature-drift"
signal = "feature_drift"
model = "fraud"
statistic = "psi"
op = ">"
threshold = 0.5
for = "0s"
severity = "critical"
labels = {{ owner = "risk-team" }}

[alerting]
alertmanager = ["{alertmanager}"]
resend_secs = 5

[[alerting.webhook]]
url = "{hook_url}"
secret = "{SECRET}"
"""
    )
    server = servers(repo, "--config", str(config))
    base = f"http://127.0.0.1:{server.http_port}"
    rows = _rows()
    rng = random.Random(7)

    def send(shift: float, requests: int):
        for _ in range(requests):
            data = []
            for _ in range(40):
                row = list(rng.choice(rows))
                row[0] += shift
                data += row
            body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [40, 12], "data": data}]})
            req = urllib.request.Request(f"{base}/v2/models/fraud/infer", body.encode(), {"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200

    def row_windows():
        return _get(f"{base}/v2/models/fraud/versions/1/monitor")["versions"][0]["row_windows"]

    send(0.0, 20)
    _wait("two same-distribution windows", lambda: len(row_windows()) >= 2)
    time.sleep(2.5)  # two evaluations
    listed = _get(f"{base}/v2/alerts")
    assert listed["alerts"] == [], listed
    assert [r["name"] for r in listed["rules"]] == ["fraud-feature-drift"]
    assert received == [] and rejected == []

    send(3.0, 10)
    firing = _wait(
        "the firing webhook",
        lambda: [m for m in received if m["type"] == "alert.firing"],
    )
    assert rejected == [], rejected
    assert {m["data"]["feature"] for m in firing} == {"amount_log"}, firing
    alert = firing[0]["data"]
    assert (alert["model"], alert["version"], alert["state"]) == ("fraud", "1", "firing")
    assert alert["value"] > 0.5 and alert["labels"] == {"owner": "risk-team"}

    def in_alertmanager():
        return [
            a for a in _get(f"{alertmanager}/api/v2/alerts")
            if a["labels"].get("alertname") == "fraud-feature-drift"
        ]

    am = _wait("the alert in Alertmanager", in_alertmanager)
    labels = am[0]["labels"]
    assert labels["feature"] == "amount_log" and labels["model"] == "fraud"
    assert labels["severity"] == "critical" and labels["owner"] == "risk-team"
    assert am[0]["status"]["state"] == "active"

    cli = subprocess.run(
        [str(_binary()), "alerts", "--url", base], capture_output=True, text=True, timeout=30
    )
    assert cli.returncode == 0, cli.stderr
    assert "firing" in cli.stdout and "amount_log" in cli.stdout, cli.stdout

    send(0.0, 10)
    resolved = _wait(
        "the resolved webhook",
        lambda: [m for m in received if m["type"] == "alert.resolved"],
    )
    assert resolved[0]["data"]["feature"] == "amount_log"
    assert resolved[0]["data"]["resolved_at"]
    assert rejected == [], rejected
    # Alertmanager hears the end too: the alert carries an endsAt no later than now.
    _wait(
        "Alertmanager to see the alert end",
        lambda: all(a["endsAt"] <= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z" for a in in_alertmanager() or [{"endsAt": ""}]),
    )
    assert "ballast_alert_notifications_total" in server.metrics()
