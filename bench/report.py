"""docs/benchmarks.md: the machine, the command, one table, and how each row was measured."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bench.harness import Figure, Section, Value, raised_limits

_UP, _DOWN = "↑", "↓"


def number(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(figure: Figure) -> str:
    ours, theirs = figure.jobcast, figure.baseline
    if isinstance(ours, int | float) and isinstance(theirs, int | float) and theirs > 0:
        return f"{ours / theirs:.2f}"
    return "—"


def unit(figure: Figure) -> str:
    if not figure.unit:
        return "—"
    return f"{figure.unit} {_UP if figure.higher_is_better else _DOWN}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _loaded(machine: dict[str, str]) -> bool:
    try:
        load = max(float(machine["load_start"]), float(machine["load_end"]))
        return load > 0.5 * int(machine["cores"])
    except (KeyError, ValueError):
        return False


def table(sections: Sequence[Section]) -> list[str]:
    lines = [
        "| # | figure | unit | jobcast | baseline | baseline is | jobcast / baseline |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for section in sections:
        if section.error is not None:
            lines.append(
                f"| {section.number} | {_cell(section.title)} | — | "
                f"not measured: {_cell(section.error[:200])} | — | — | — |"
            )
            continue
        for figure in section.figures:
            lines.append(
                f"| {section.number} | {_cell(figure.what)} | {unit(figure)} | "
                f"{_cell(number(figure.jobcast))} | {number(figure.baseline)} | "
                f"{_cell(figure.baseline_is)} | {ratio(figure)} |"
            )
    return lines


def render(
    *,
    sections: Sequence[Section],
    machine: dict[str, str],
    services: str,
    command: str,
    mode: str,
    started: datetime,
    elapsed_s: float,
) -> str:
    limits = ", ".join(f"`{key}`" for key in raised_limits()) or "none"
    lines = [
        "# Benchmarks",
        "",
        "jobcast next to the raw parts it is built on, measured in one run on one machine. "
        "`make bench` makes this page (about twenty minutes on an idle 2-core machine). "
        "`make bench-quick` "
        "runs every benchmark smaller, as a check that each still measures (meant to take "
        'under two minutes; what it takes is in performance.md, "How long the quick run '
        'takes"), and writes its table to `.jobcast/benchmarks-quick.md`, not here.',
        "",
        f"- **Command:** `{command}` ({mode} mode, {elapsed_s:.0f} s)",
        f"- **Date:** {started:%Y-%m-%d %H:%M} UTC",
        f"- **Machine:** {machine['cores']} cores ({machine['cpu']}), {machine['os']}",
        f"- **Software:** Python {machine['python']}, Postgres {machine['postgres']}, "
        f"Redis {machine['redis']}",
        f"- **Services:** {services}",
        f"- **Load:** 1-minute load average {machine.get('load_start', '?')} when the run began "
        f"and {machine.get('load_end', '?')} when it ended, on {machine['cores']} cores"
        + (
            ": other work shared the machine during the run, so the absolute figures are "
            "those of a loaded machine; each ratio compares two figures of the same run."
            if _loaded(machine)
            else "."
        ),
        "- Everything runs on this machine at once: the load generator (one asyncio process "
        "on uvloop, aiohttp for HTTP, websockets for sockets), the web and worker processes, "
        "Postgres and Redis share its cores; every connection is to a loopback address.",
        f"- **Settings:** as `make run` has them, but for the per-owner limits ({limits}), "
        "set out of reach: one benchmark owner stands for a whole app. Their checks still run "
        "(far below its active-jobs cap, an owner's submits take its lock in shared mode).",
        "",
        *table(sections),
        "",
        f"{_UP} higher is better, {_DOWN} lower is better: a ratio above 1 is better for "
        f"{_UP} rows and worse for {_DOWN} rows. Each number is from this one run; on a "
        "machine that does other work meanwhile, runs differ by tens of percent.",
        "",
        "Where the time goes (profiles of the submit and event paths), what was changed "
        "because of them, and which targets are not met yet: "
        "[docs/performance.md](performance.md).",
        "",
        "## How each row was measured",
        "",
    ]
    for section in sections:
        lines.append(f"**{section.number}. {section.title}.**")
        lines.append("")
        for note in section.notes:
            lines.append(f"- {note}")
        if section.error is not None:
            lines.append(f"- Not measured in this run: {section.error}")
        lines.append("")
    return "\n".join(lines)
