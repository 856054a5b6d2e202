"""The command line as a newcomer uses it: real processes, a real port, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("command", [[], ["serve"], ["migrate"], ["check"]])
def test_every_command_explains_itself_with_help(command, tmp_path):
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: run.py" in result.stdout


def test_serve_on_a_fresh_machine_creates_the_database_and_answers_healthz(tmp_path):
    port = free_port()
    env = {**os.environ, "P2P_HTTP_PORT": str(port), "P2P_DEMO_DATA": "false"}
    server = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert body is not None, "server never answered /healthz"
        assert '"status": "ok"' in body
        assert (tmp_path / "var" / "p2p.db").is_file()
        assert (tmp_path / "var" / "secrets.toml").stat().st_mode & 0o077 == 0
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "generated secret_key and data_key" in output


def test_a_wrong_setting_stops_start_up_with_its_name(tmp_path):
    result = run("check", env={"P2P_HTTP_PORT": "70000"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "P2P_HTTP_PORT" in result.stderr


def test_postgres_without_secrets_refuses_to_start(tmp_path):
    result = run("check", env={"P2P_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/x"},
                 cwd=tmp_path)
    assert result.returncode == 2
    assert "P2P_SECRET_KEY" in result.stderr
    assert "P2P_DATA_KEY" in result.stderr


def test_migrate_then_check_on_a_new_sqlite_file(tmp_path):
    assert run("migrate", cwd=tmp_path).returncode == 0
    result = run("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 violation(s)" in result.stdout


def test_schedule_prints_a_csv_whose_principal_adds_up_to_the_amount(tmp_path):
    import csv
    from decimal import Decimal

    result = run("schedule", "--amount", "10000", "--rate", "12", "--months", "12",
                 "--method", "equal_installment", "--start", "2026-01-31", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert list(rows[0]) == ["period", "due_date", "payment", "principal", "interest",
                             "remaining"]
    assert len(rows) == 12
    assert rows[0]["payment"] == "888.49" and rows[0]["due_date"] == "2026-02-28"
    assert sum(Decimal(r["principal"]) for r in rows) == Decimal("10000.00")
    assert rows[-1]["remaining"] == "0.00"


@pytest.mark.parametrize("args", [["--amount", "abc"], ["--amount", "100.001"],
                                  ["--amount", "-5"], ["--rate", "x"], ["--months", "0"]])
def test_schedule_refuses_bad_input_with_a_message(args, tmp_path):
    values = {"--amount": "10000", "--rate": "12", "--months": "12"}
    values.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in values.items() for item in pair]
    result = run("schedule", *flat, "--method", "bullet", cwd=tmp_path)
    assert result.returncode == 2
    assert "schedule:" in result.stderr
    assert result.stdout == ""


def test_jobs_daily_runs_a_day_once_and_says_so_the_second_time(tmp_path):
    assert run("migrate", cwd=tmp_path).returncode == 0
    first = run("jobs", "daily", "--date", "2026-03-02", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "2026-03-02 auto_debit: {'debited': 0, 'short': 0}" in first.stdout
    again = run("jobs", "daily", "--date", "2026-03-02", cwd=tmp_path)
    assert "2026-03-02 auto_debit: already done" in again.stdout
    bad = run("jobs", "daily", "--date", "2026-02-30", cwd=tmp_path)
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_the_telegram_sandbox_chats_in_the_terminal_and_remembers_across_sessions(tmp_path):
    def session(lines: str) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "telegram-sandbox", "--port",
             str(free_port()), "--api-port", str(free_port()), "--language", "en"],
            cwd=tmp_path, input=lines, capture_output=True, text=True, timeout=120,
            check=False, env={**os.environ, "P2P_SUPPORT__HOURS": "00:00-24:00"})
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = session("/start\n#4\n/quit\n")
    assert "Hello and welcome to P2P Desk!" in first and "[#4] Talk to a human" in first
    assert "You are in the queue for a human agent" in first
    second = session("hello again\n/quit\n")  # the same chat, still waiting for an agent
    assert "An agent will join shortly." in second
