"""Demo data as a newcomer meets it: ``run.py seed`` on an empty database, and the first start of
the embedded default, which seeds a small platform and gives a manager login to look at it."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from tests.e2e.test_cli import ROOT, free_port, run

SMALL = {"P2P_DEMO_USERS": "40", "P2P_DEMO_DAYS": "20"}


def answers(base: str, *, within: float) -> bool:
    """Does the server answer /healthz within ``within`` seconds?"""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def test_seed_fills_an_empty_database_once_and_the_data_keeps_every_invariant(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "seed", "--users", "40", "--days", "20",
         "--seed", "5"], cwd=tmp_path, env={**os.environ}, capture_output=True, text=True,
        timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    found = re.search(r"20 days, (\d+) visitors, (\d+) registered", result.stdout)
    assert found, result.stdout
    assert int(found.group(1)) > int(found.group(2)) > 10
    assert "events/s" in result.stdout

    again = run("seed", "--users", "40", "--days", "20", cwd=tmp_path)
    assert again.returncode == 1
    assert "already has" in again.stderr and "users" in again.stderr

    for bad in (["--users", "0"], ["--days", "many"], ["--end", "2999-01-01"]):
        refused = run("seed", *bad, cwd=tmp_path)
        assert refused.returncode == 2, bad
        assert ("not at least 1" in refused.stderr or "not a whole number" in refused.stderr
                or "before today" in refused.stderr)

    check = run("check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert " 0 violation(s)" in check.stdout


def test_the_first_start_seeds_a_demo_and_a_manager_can_sign_in(tmp_path):
    port = free_port()
    env = {**os.environ, "P2P_HTTP_PORT": str(port), **SMALL}
    server = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert answers(base, within=300), "server never answered /healthz"
        login = tmp_path / "var" / "demo-login.txt"
        assert login.stat().st_mode & 0o077 == 0
        name, password = login.read_text(encoding="utf-8").split()
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/login?next=/dashboards/", timeout=10) as r:
            form = r.read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        data = urllib.parse.urlencode({"csrf_token": csrf, "next": "/dashboards/",
                                       "name": name, "password": password}).encode()
        with opener.open(f"{base}/login", data=data, timeout=30) as r:
            assert r.status == 200
            assert r.url.endswith("/dashboards/")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "first start: seeding a demo platform" in output
    assert "registered" in output and "demo.manager" in output

    # A second start finds the data and does not seed again.
    again = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert answers(base, within=60)
    finally:
        again.send_signal(signal.SIGTERM)
        output, _ = again.communicate(timeout=60)
    assert "first start" not in output
