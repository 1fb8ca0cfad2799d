"""Two HAProxy balancers, each with the vault's certificate, each balancing both app nodes."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from prod import APPS, PUBLIC, vault
from stackhelpers import env_file, http


def servers(lb) -> dict[str, str]:
    """The app backend's servers and their state, from the runtime API."""
    out = lb.check_output("echo 'show servers state app' | socat stdio /run/haproxy/admin.sock")
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    # Fields: be_id be_name srv_id srv_name srv_addr srv_op_state ... (2 is running).
    return {row[3]: row[5] for row in rows}


def test_each_balancer_serves_the_vaults_certificate(lbs):
    want = vault()["vault_tls_certificate"]
    for url in PUBLIC:
        host, port = url.removeprefix("https://").split(":")
        seen = ssl.get_server_certificate((host, int(port)))
        assert ssl.PEM_cert_to_DER_cert(seen) == ssl.PEM_cert_to_DER_cert(want)
    for lb in lbs:
        assert lb.file("/etc/haproxy/certs/site.pem").content_string.strip() == want.strip()


def test_each_balancer_has_both_app_nodes_up_checked_on_the_apps_liveness_path(lbs):
    for lb in lbs:
        assert servers(lb) == {name: "2" for name in APPS}
        # The app role's default liveness path, answered by the server's workers: never the
        # app's /health, which asks PostgreSQL and Redis.
        assert "uri /.pystack/live " in lb.file("/etc/haproxy/haproxy.cfg").content_string


def test_http_redirects_to_https_on_the_same_name(lbs):
    for lb in lbs:
        status, headers, _ = http(lb, "http://127.0.0.1/notes/1?x=1", options=("-H", "Host: notes.example.net:80"))
        assert status == 301
        assert headers["location"] == "https://notes.example.net/notes/1?x=1"


def test_the_deploy_probe_does_not_answer_through_a_balancer(apps):
    token = env_file(apps[0])["PYSTACK_PROBE_TOKEN"]
    context = ssl._create_unverified_context()
    for url in PUBLIC:
        request = urllib.request.Request(url + "/.pystack/deploy", headers={"X-Pystack-Probe": token})
        try:
            urllib.request.urlopen(request, context=context, timeout=10)
            raise AssertionError("the probe answered through " + url)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
