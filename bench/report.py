"""Turn benchmark results into a terminal table and the results section of the docs.

:func:`format_report` renders the results of :func:`bench.run.run_benchmark`
for the terminal; :func:`results_markdown` renders the same as Markdown, and
:func:`update_docs` puts that between the two marker comments of
``docs/benchmarks.md``, leaving the hand-written text around them alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "DOCS_BEGIN",
    "DOCS_END",
    "format_report",
    "results_markdown",
    "update_docs",
]

DOCS_BEGIN = "<!-- bench:results:begin (written by python -m bench.run) -->"
DOCS_END = "<!-- bench:results:end -->"


def _value(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _machine_line(results: dict[str, Any]) -> str:
    machine = results["machine"]
    load = ", ".join(str(value) for value in machine["load_average_at_start"])
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, Linux {machine['kernel']}, "
        f"Python {machine['python']}, {machine['sipp']}; load average at start {load}"
    )


def _other_load(core_busy: list[float], core: int | None, own: float) -> str:
    """The share of the answerer's core used by programs outside the benchmark."""
    if core is None or core >= len(core_busy):
        return "-"
    return f"{max(0.0, core_busy[core] - own):.0%}"


def _rate_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    core = results["config"]["router_core"]
    for name, sweep in results["calls_per_second"].items():
        for step in sweep["steps"]:
            cpu = sum(step["target_cpu_s"].values())
            busy = cpu / max(step["elapsed_s"], 1e-9)
            other = _other_load(step.get("core_busy", []), core, busy)
            rows.append(
                [
                    name,
                    str(step["rate"]),
                    str(step["calls"]),
                    str(step["successful"]),
                    f"{step['retransmission_ratio']:.2%}",
                    f"{step['elapsed_s']:.2f}/{step['expected_s']:.2f}",
                    f"{busy:.0%}",
                    other,
                    "yes" if step["holds"] else f"no: {step['why_not']}",
                ]
            )
    return rows


def _bridged_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    core = results["config"]["router_core"]
    for name, sweep in results["bridged"].items():
        for step in sweep["steps"]:
            window = max(step["window_s"], 1e-9)
            helpers = sum(step["helper_cpu_s"].values()) / window
            own = step["answerer_cpu_s"] / window + helpers
            rows.append(
                [
                    name,
                    str(step["calls"]),
                    str(step["frames_sent"]),
                    str(step["frames_lost"]),
                    str(step["frames_late"]),
                    f"{step['latency_p50_ms']:.1f}",
                    f"{step['latency_p99_ms']:.1f}",
                    f"{step['cpu_per_call_percent']:.3f}",
                    f"{step['answerer_cpu_s'] / window:.0%}",
                    f"{helpers:.0%}",
                    _other_load(step["core_busy"], core, own),
                    f"{step['rss_per_call_kib']:.1f}",
                    "yes" if step["holds"] else f"no: {step['why_not']}",
                ]
            )
    return rows


# "CPU" columns are shares of one core: the answerer's own process, the
# helpers on its core (echo runner, Redis), and everything else on that core.
RATE_HEADER = ["answerer", "calls/s", "calls", "ok", "retrans", "took/expected s"]
RATE_HEADER += ["answerer CPU", "other CPU", "holds"]
BRIDGED_HEADER = ["answerer", "calls", "frames", "lost", "late", "p50 ms", "p99 ms"]
BRIDGED_HEADER += ["CPU %/call", "answerer CPU", "runner CPU", "other CPU", "KiB/call"]
BRIDGED_HEADER += ["holds"]


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows
    ]
    head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(header))
    return "\n".join(["    " + head, *("    " + line for line in lines)])


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def _bound(figures: dict[str, Any], name: str) -> str:
    """The figure, with ">=" when every step held (the limit lies higher)."""
    prefix = ">= " if figures.get(f"{name}_is_lower_bound") else ""
    return prefix + _value(figures[name])


def _summary(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, router, reference, ratio) rows of the headline figures."""
    figures, setup = results["figures"], results["setup_time"]
    router_setup = setup["router"]
    sipp_setup = setup["sipp_uas"]
    rows = [
        (
            "answered calls/s (one core)",
            _bound(figures, "router_calls_per_second"),
            f"{_bound(figures, 'sipp_uas_calls_per_second')} (SIPp UAS)",
            _ratio(figures["calls_per_second_ratio"]),
        ),
        (
            "bridged calls (one core)",
            _bound(figures, "router_bridged_calls"),
            f"{_bound(figures, 'relay_bridged_calls')} (SIPp -rtp_echo)",
            _ratio(figures["bridged_calls_ratio"]),
        ),
        (
            "added latency p50 / p99 at that N",
            f"{_value(figures['router_bridged_latency_p50_ms'])} / "
            f"{_value(figures['router_bridged_latency_p99_ms'])} ms",
            "",
            "",
        ),
        (
            "bridged calls with p99 under the target",
            f"{_value(figures.get('router_bridged_calls_within_p99_target'))} "
            f"(p99 {_value(figures.get('router_bridged_latency_p99_ms_within_target'))}"
            " ms)",
            "",
            "",
        ),
        (
            "router CPU / RSS per bridged call",
            f"{_value(figures['router_cpu_per_call_percent'])} % of a core / "
            f"{_value(figures['router_rss_per_call_kib'])} KiB",
            "",
            "",
        ),
        (
            "set-up INVITE -> 200 p50 / p99",
            f"{router_setup['p50_ms']} / {router_setup['p99_ms']} ms "
            f"at {router_setup['rate']}/s",
            f"{sipp_setup['p50_ms']} / {sipp_setup['p99_ms']} ms at {sipp_setup['rate']}/s",
            f"+{figures['setup_p99_overhead_ms']} ms (p99)",
        ),
    ]
    if figures.get("bare_python_calls_per_second") is not None:
        # Not a target: the same calls in bare-bones Python (bench.bare).
        rows.insert(
            1,
            (
                "answered calls/s vs bare-bones Python",
                _bound(figures, "router_calls_per_second"),
                f"{_bound(figures, 'bare_python_calls_per_second')} (bench.bare, "
                f"{_ratio(figures['bare_python_calls_per_second_ratio'])} of SIPp)",
                _ratio(figures["router_to_bare_python_ratio"]),
            ),
        )
    return rows


def _target_lines(results: dict[str, Any]) -> list[str]:
    if results.get("what") == "quick":
        # One low rate and a handful of calls: the figures check the path, and
        # say nothing about the targets.
        return ["not judged: a quick run measures too little (run the full benchmark)"]
    lines = []
    for name, target in results["targets"].items():
        mark = "met" if target["met"] else "MISSED"
        lines.append(f"{name}: {mark} (target {target['target']}, got {target['got']})")
    return lines


def format_report(results: dict[str, Any]) -> str:
    """The results as a terminal report."""
    config = results["config"]
    parts = [
        f"sip-router benchmark ({results['what']}), {results['date']}",
        _machine_line(results),
        f"socket buffers: rmem_max {results['socket_buffers']['rmem_max']} B, "
        f"wmem_max {results['socket_buffers']['wmem_max']} B",
        "",
        f"(a) answered calls per second: uac_load.xml, pause {config['pause_ms']} ms, "
        f"{config['step_s']:g} s a step",
        _text_table(RATE_HEADER, _rate_rows(results)),
        "",
        f"(b) bridged calls: 50 frames/s each way, {config['window_s']:g} s window, "
        f"late = echoed > {config['late_ms']:g} ms after sending",
        _text_table(BRIDGED_HEADER, _bridged_rows(results)),
        "",
        "summary",
    ]
    rows = _summary(results)
    # Columns as wide as their widest cell, so every row lines up.
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for measure, router, reference, ratio in rows:
        parts.append(
            f"    {measure:{widths[0]}}  router {router:{widths[1]}}"
            f"  ref {reference:{widths[2]}}  {ratio}".rstrip()
        )
    parts += ["", "targets", *("    " + line for line in _target_lines(results))]
    for profile in results.get("profiles", []):
        parts += [
            "",
            f"profile {profile['name']} ({profile['samples']} samples), top self:",
        ]
        for frame in profile["top_self"][:10]:
            parts.append(
                f"    {frame['self_percent']:5.1f} % self {frame['total_percent']:5.1f} % "
                f"total  {frame['function']}"
            )
    return "\n".join(parts)


def results_markdown(results: dict[str, Any], json_name: str) -> str:
    """The results section of docs/benchmarks.md."""
    config = results["config"]
    lines = [
        f"### Latest run: {results['date'][:10]} ({results['what']}, "
        f"{config['store']} store)",
        "",
        f"- Machine: {_machine_line(results)}.",
        f"- Command: `{results['command'].strip()}` "
        f"({results['duration_s']} s); commit {results['machine']['commit']}"
        + (" with local changes" if results["machine"]["router_tree_modified"] else "")
        + ".",
        f"- Socket buffers: rmem_max {results['socket_buffers']['rmem_max']} B, "
        f"wmem_max {results['socket_buffers']['wmem_max']} B.",
        f"- Every figure: `bench/results/{json_name}`.",
        "",
        "| measure | router | reference | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m} | {r} | {ref} | {x} |" for m, r, ref, x in _summary(results)]
    lines += ["", "Targets:", ""]
    lines += [f"- {line}" for line in _target_lines(results)]
    if results.get("rejudged"):
        # The same measurements judged by a rule changed after the run.
        lines += ["", str(results["rejudged"])]
    lines += [
        "",
        f"(a) Answered calls per second (`uac_load.xml`, pause {config['pause_ms']} ms, "
        f"{config['step_s']:g} s a step):",
        "",
        _markdown_table(RATE_HEADER, _rate_rows(results)),
        "",
        f"(b) Bridged calls ({config['window_s']:g} s window; late = echoed more than "
        f"{config['late_ms']:g} ms after sending):",
        "",
        _markdown_table(BRIDGED_HEADER, _bridged_rows(results)),
    ]
    for profile in results.get("profiles", []):
        lines += [
            "",
            f"Profile `{profile['name']}` ({profile['samples']} samples"
            + (
                f", flame graph `bench/results/{profile['flame_graph']}`"
                if profile["flame_graph"]
                else ""
            )
            + "), top functions by own time:",
            "",
            "| self % | total % | function |",
            "|---|---|---|",
        ]
        lines += [
            f"| {f['self_percent']} | {f['total_percent']} | `{f['function']}` |"
            for f in profile["top_self"][:12]
        ]
    return "\n".join(lines)


def update_docs(path: Path, results: dict[str, Any], json_name: str) -> None:
    """Replace the text between the result markers of ``path`` with these results.

    The markers are appended first if the file lacks them.
    """
    text = path.read_text() if path.exists() else ""
    if DOCS_BEGIN not in text or DOCS_END not in text:
        text = text.rstrip("\n") + f"\n\n{DOCS_BEGIN}\n{DOCS_END}\n"
    before, _, rest = text.partition(DOCS_BEGIN)
    _, _, after = rest.partition(DOCS_END)
    block = results_markdown(results, json_name)
    path.write_text(f"{before}{DOCS_BEGIN}\n\n{block}\n\n{DOCS_END}{after}")
