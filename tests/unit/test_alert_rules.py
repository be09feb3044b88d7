"""deploy/prometheus/alerts.yml: valid rules, their hand-written tests pass, every metric
they name is one jobcast exports, and every alert has its runbook section."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jobcast import metrics
from jobcast.settings import ROOT

RULES = ROOT / "deploy" / "prometheus"
RUNBOOK = ROOT / "docs" / "operations.md"


def _promtool() -> str:
    """promtool (Debian's prometheus package), installed as root when missing."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("promtool is missing: sudo apt-get install prometheus (it ships promtool)")
    installed = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "prometheus"], capture_output=True, text=True
    )
    found = shutil.which("promtool")
    if not found:
        pytest.skip(f"apt-get could not install prometheus (promtool): {installed.stderr[-300:]}")
    return found


def _run(*args: str) -> str:
    done = subprocess.run(
        [_promtool(), *args], cwd=RULES, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS" in _run("check", "rules", "alerts.yml")


def test_promtool_runs_the_rule_tests() -> None:
    assert "SUCCESS" in _run("test", "rules", "alerts_test.yml")


def _exported() -> set[str]:
    names = {f"jobcast_{name}" for name in metrics._INSTALL_DOCS}
    for value in vars(metrics).values():
        describe = getattr(value, "describe", None)
        if callable(describe) and hasattr(value, "_name"):
            name = value._name
            kind = getattr(value, "_type", "")
            names.add(f"{name}_total" if kind == "counter" else name)
    return names


def test_every_metric_the_alerts_name_is_exported() -> None:
    text = (RULES / "alerts.yml").read_text()
    named = set(re.findall(r"\b(jobcast_[a-z_]+)\b", text))
    assert named, "the rules name no metric"
    assert named - _exported() == set(), "alerts.yml names metrics jobcast does not export"


def test_every_alert_has_a_runbook_section() -> None:
    alerts = re.findall(r"- alert: (\w+)", (RULES / "alerts.yml").read_text())
    headings = set(re.findall(r"^## (\w+)", RUNBOOK.read_text(), flags=re.MULTILINE))
    assert set(alerts) - headings == set(), "docs/operations.md lacks these alerts' sections"


def test_the_rules_test_file_covers_every_alert() -> None:
    alerts = set(re.findall(r"- alert: (\w+)", (RULES / "alerts.yml").read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "alerts_test.yml").read_text()))
    assert alerts == tested


def test_rule_files_exist() -> None:
    assert Path(RULES / "alerts.yml").is_file() and Path(RULES / "alerts_test.yml").is_file()
