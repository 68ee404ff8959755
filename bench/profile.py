"""Where the router's time goes: py-spy samples of the router under load.

:func:`record_profile` attaches py-spy to the router's PID without stopping
it (``--nonblocking``) while the caller applies a load, and writes two files:
a flame graph (SVG) for people and collapsed stacks for :func:`top_frames`,
which ranks functions by the share of samples spent in them (self) and
under them (total).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.system import REPO, BenchError

__all__ = [
    "FrameShare",
    "Profile",
    "py_spy_available",
    "record_profile",
    "top_frames",
]

# Samples a second: enough for a ranking over ~10 s, light on the load core.
SAMPLE_RATE = 100
# Time py-spy gets to write its files after its own --duration.
PY_SPY_GRACE_S = 30.0
# Where the frames every sample passes through live (see _is_entry_frame).
ENTRY_FILES: tuple[str, ...] = ("(<frozen runpy>)", "(router/cli.py)")
ENTRY_FILES += ("(uvloop/__init__.py)",)
ENTRY_FILES += ("(asyncio/runners.py)", "(asyncio/base_events.py)")
# "function (path/to/file.py:123)" in py-spy's collapsed stacks.
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class FrameShare:
    """A function and the share of all samples in it (self) and under it (total)."""

    function: str
    self_share: float
    total_share: float

    def as_dict(self) -> dict[str, Any]:
        """The frame for the results file."""
        return {
            "function": self.function,
            "self_percent": round(100 * self.self_share, 1),
            "total_percent": round(100 * self.total_share, 1),
        }


@dataclass
class Profile:
    """A py-spy recording: where it is, how many samples, the top functions."""

    name: str
    svg: Path | None
    samples: int
    top_self: list[FrameShare]
    top_total: list[FrameShare]

    def as_dict(self) -> dict[str, Any]:
        """The profile for the results file."""
        return {
            "name": self.name,
            "flame_graph": self.svg.name if self.svg else None,
            "samples": self.samples,
            "top_self": [frame.as_dict() for frame in self.top_self],
            "top_total": [frame.as_dict() for frame in self.top_total],
        }


def py_spy_command() -> str | None:
    """Return the py-spy command, or ``None`` if it is not installed.

    The one beside this Python (the project's venv, where ``make bench`` puts it)
    comes first, then one on PATH.
    """
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def py_spy_available() -> bool:
    """Whether the py-spy command is installed."""
    return py_spy_command() is not None


def record_profile(
    name: str,
    pid: int,
    *,
    duration_s: float,
    out_dir: Path,
    core: int | None,
    top: int = 15,
) -> Profile:
    """Sample ``pid`` with py-spy for ``duration_s`` (the caller applies the load).

    Raises:
        BenchError: py-spy is missing or recorded nothing.
    """
    if not py_spy_available():
        raise BenchError("py-spy is not installed (pip install py-spy)")
    out_dir.mkdir(parents=True, exist_ok=True)
    svg, raw = out_dir / f"{name}.svg", out_dir / f"{name}.collapsed.tmp"
    recorders = [
        _start_py_spy(pid, svg, "flamegraph", duration_s, core),
        _start_py_spy(pid, raw, "raw", duration_s, core),
    ]
    for recorder in recorders:
        _finish(recorder, duration_s)
    try:
        stacks = raw.read_text()
    except OSError as error:
        raise BenchError(f"py-spy wrote no samples for {name}") from error
    finally:
        raw.unlink(missing_ok=True)
    samples, top_self, top_total = top_frames(stacks, top)
    if svg.exists():
        svg.write_text(_without_install_paths(svg.read_text()))
    return Profile(name, svg if svg.exists() else None, samples, top_self, top_total)


def _without_install_paths(text: str) -> str:
    """The flame graph with file paths made relative to where they are installed.

    The graph names each frame's file; where this machine keeps the checkout and
    the interpreter is of no use to a reader, and is left out.
    """
    prefixes = {str(REPO)} | {entry for entry in sys.path if Path(entry).is_dir()}
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix.rstrip("/") + "/", "")
    return text


def _start_py_spy(
    pid: int, output: Path, fmt: str, duration_s: float, core: int | None
) -> subprocess.Popen[bytes]:
    command = py_spy_command() or "py-spy"
    argv = [command, "record", "--pid", str(pid), "--output", str(output)]
    argv += ["--format", fmt, "--rate", str(SAMPLE_RATE)]
    argv += ["--duration", str(max(1, round(duration_s))), "--nonblocking"]
    if core is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(core), *argv]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(recorder: subprocess.Popen[bytes], duration_s: float) -> None:
    try:
        recorder.wait(duration_s + PY_SPY_GRACE_S)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait()


def top_frames(
    collapsed: str, top: int = 15
) -> tuple[int, list[FrameShare], list[FrameShare]]:
    """Rank functions in py-spy's collapsed stacks (``a;b;c 12`` per line).

    Returns:
        The number of samples, the top functions by self share and by total share.
    """
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # The first element names the thread (or process), not a function.
        frames = [_readable(frame) for frame in stack.split(";")[1:]]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            under[frame] += count
    if not samples:
        return 0, [], []

    def share(counter: Counter[str], skip: Callable[[str], bool]) -> list[FrameShare]:
        ranked = [frame for frame, _ in counter.most_common() if not skip(frame)]
        return [
            FrameShare(frame, own[frame] / samples, under[frame] / samples)
            for frame in ranked[:top]
        ]

    return samples, share(own, lambda frame: False), share(under, _is_entry_frame)


def _is_entry_frame(frame: str) -> bool:
    """Frames every sample passes through (start-up, the event loop's run):
    first in any ranking by total time, and telling nothing."""
    return frame.endswith(ENTRY_FILES) or frame.startswith("<module>")


def _readable(frame: str) -> str:
    """``function (file)`` with the path cut to the part worth reading."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['function']} ({_short_path(match['path'])})"


def _short_path(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/lib/python3" in path:
        return path.split("/lib/python3", 1)[1].partition("/")[2]
    for package in ("/router/", "/bench/"):
        if package in path:
            return package[1:] + path.split(package, 1)[1]
    return path
