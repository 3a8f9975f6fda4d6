"""The result tables: plain text for the terminal, Markdown for README.md."""
from __future__ import annotations

import math
import shutil
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from bench import loops
from bench.registry import Workload

GROUP_TITLES = {
    "core": "Loop core",
    "stream": "Streams: echo servers on the loop under test (fixed C client, other core)",
    "http": ("HTTP: aiohttp on the loop under test (load from wrk, other core)" if shutil.which("wrk")
             else "HTTP: aiohttp on the loop under test (load from a Python client: wrk is not installed; "
             "other core)"),
    "tls": "TLS: echo servers over TLS on the loop under test (fixed C OpenSSL client, other core)",
}


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_rate(rate: float) -> str:
    """ops/s, three significant digits: 1.23M, 456k, 789."""
    if rate != rate:
        return "-"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= factor:
            value = rate / factor
            return f"{value:.3g}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return f"{rate:.3g}"


def spread(values: Sequence[float]) -> Optional[float]:
    """Half the range of the runs, relative to their median (a noise indication)."""
    if len(values) < 2:
        return None
    return (max(values) - min(values)) / 2 / median(values)


def geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v == v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


class Table:
    def __init__(
        self,
        selected: List[Workload],
        active: List[str],
        runs: Dict[str, Dict[str, List[float]]],
        errors: Dict[str, Dict[str, str]],
        notes: List[str],
        meta: dict,
        cpu: Optional[Dict[str, Dict[str, List[float]]]] = None,
    ) -> None:
        self.selected = selected
        self.cpu = cpu or {}  # workload -> loop -> seconds of the loop process's CPU per op
        self.active = active
        self.runs = runs
        self.errors = errors
        self.notes = notes
        self.meta = meta
        pairs = [(loops.SUBJECT, loops.BASELINE), (loops.SUBJECT, "uvloop"), ("uvloop", loops.BASELINE),
                 ("uvloop_like_py", loops.BASELINE)]
        self.ratios: List[Tuple[str, str]] = [(a, b) for a, b in pairs if a in active and b in active]
        self.footnotes: List[str] = []

    def _groups(self) -> List[Tuple[str, List[Workload]]]:
        groups: Dict[str, List[Workload]] = {}
        for w in self.selected:
            groups.setdefault(w.group, []).append(w)
        return [(GROUP_TITLES.get(g, g), ws) for g, ws in groups.items()]

    def _ratio(self, wl: str, a: str, b: str) -> float:
        ra, rb = self.runs[wl].get(a), self.runs[wl].get(b)
        if not ra or not rb:
            return float("nan")
        return median(ra) / median(rb)

    def _cell(self, wl: str, loop: str, with_spread: bool) -> str:
        values = self.runs[wl].get(loop) or []
        if not values:
            error = self.errors[wl].get(loop, "no result")
            self.footnotes.append(f"{wl} on {loop}: {error}")
            return f"ERR[{len(self.footnotes)}]"
        cell = fmt_rate(median(values))
        s = spread(values) if with_spread else None
        if s is not None:
            cell += f" ±{s * 100:.0f}%"
        return cell

    def _cpu_ratio(self, wl: str, a: str, b: str) -> float:
        """How many times less CPU per op ``a`` spent than ``b`` (higher = ``a`` cheaper)."""
        ca, cb = self.cpu.get(wl, {}).get(a), self.cpu.get(wl, {}).get(b)
        if not ca or not cb or not median(ca):
            return float("nan")
        return median(cb) / median(ca)

    def _cpu_cell(self, wl: str, loop: str) -> str:
        values = self.cpu.get(wl, {}).get(loop) or []
        return f"{median(values) * 1e6:.2f}" if values else "-"

    def _rows(self, with_spread: bool) -> List[Tuple[str, List[str], List[List[str]]]]:
        """(title, header, rows) per table: each group's throughput, then, where the
        workloads measured it, the loop process's CPU time per op."""
        out = []
        for title, ws in self._groups():
            rows = []
            for w in ws:
                cells = [w.name] + [self._cell(w.name, loop, with_spread) for loop in self.active]
                cells += [fmt_ratio(self._ratio(w.name, a, b)) for a, b in self.ratios]
                rows.append(cells)
            if len(ws) > 1 and self.ratios:
                gm = [fmt_ratio(geomean([self._ratio(w.name, a, b) for w in ws])) for a, b in self.ratios]
                rows.append(["geometric mean"] + [""] * len(self.active) + gm)
            out.append((title, self._header(), rows))
            measured = [w for w in ws if any(self.cpu.get(w.name, {}).values())]
            if not measured:
                continue
            rows = []
            for w in measured:
                cells = [w.name] + [self._cpu_cell(w.name, loop) for loop in self.active]
                cells += [fmt_ratio(self._cpu_ratio(w.name, a, b)) for a, b in self.ratios]
                rows.append(cells)
            if len(measured) > 1 and self.ratios:
                gm = [fmt_ratio(geomean([self._cpu_ratio(w.name, a, b) for w in measured])) for a, b in self.ratios]
                rows.append(["geometric mean"] + [""] * len(self.active) + gm)
            header = ["workload"] + [f"{loop} us CPU/op" for loop in self.active]
            header += [f"{a}/{b}" for a, b in self.ratios]
            cpu_title = (f"{title}: the server process's CPU time per op, in microseconds (less "
                         f"disturbed by other load than ops/s; ratios: higher = first one cheaper)")
            out.append((cpu_title, header, rows))
        return out

    def _header(self) -> List[str]:
        return ["workload"] + [f"{loop} ops/s" for loop in self.active] + [f"{a}/{b}" for a, b in self.ratios]

    def _conditions(self) -> str:
        m = self.meta
        pin = f"pinned to core {m['pinned']}" if m.get("pinned") is not None else "not pinned"
        load = ""
        if m.get("loadavg_before") and m.get("loadavg_after"):
            load = f"; load average {m['loadavg_before'][0]:.2f} before, {m['loadavg_after'][0]:.2f} after"
        versions = []
        for name, info in m["loops"].items():
            if name == loops.BASELINE:
                continue
            v = info.get("version", "?")
            if info.get("libuv"):
                v += f" (libuv {info['libuv']}"
                v += f", {info['core']} core)" if info.get("core") else ")"
            versions.append(f"{name} {v}")
        runs = _repeats_text(m["repeat"], self.selected)
        spreads = [s for per_loop in self.runs.values() for v in per_loop.values() for s in [spread(v)] if s is not None]
        noise = ""
        if spreads:
            noise = (
                f" (half the range of a cell's runs: median {median(spreads) * 100:.0f}%, "
                f"worst {max(spreads) * 100:.0f}%)"
            )
        text = (
            f"{runs} per cell, each run in a fresh process {pin}; {m['python']} on {m['cores']} cores "
            f"({m['cpu_model']}) shared with other work, so the numbers are noisy{noise}{load}. "
        )
        if versions:
            text += "Versions: " + ", ".join(versions) + ". "
        if m.get("profiled"):
            text += "PROFILED under cProfile: the numbers include its overhead. "
        if m.get("quick"):
            text += "QUICK smoke run (a tenth of the work): not for comparison. "
        return text + f"Higher is faster; whole run {m['elapsed_s']:.0f}s."

    def text(self) -> str:
        self.footnotes = []
        lines = []
        for title, header, rows in self._rows(with_spread=True):
            widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
            lines.append(f"\n{title}")
            lines.append(_aligned(header, widths))
            lines.append("  ".join("-" * w for w in widths))
            lines.extend(_aligned(r, widths) for r in rows)
        lines.append("")
        lines.append(self._conditions())
        lines.extend(f"[{i}] {note}" for i, note in enumerate(self.footnotes, 1))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def markdown(self) -> str:
        self.footnotes = []
        lines = []
        for title, header, rows in self._rows(with_spread=False):
            lines.append(f"### {title}\n")
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            for r in rows:
                if r[0] == "geometric mean":
                    r = ["**geometric mean**"] + r[1:]
                else:
                    r = [f"`{r[0]}`"] + r[1:]
                lines.append("| " + " | ".join(r) + " |")
            lines.append("")
        lines.append(self._conditions())
        lines.append("")
        lines.extend(f"{i}. {note}" for i, note in enumerate(self.footnotes, 1))
        lines.extend(f"- Note: {note}" for note in self.notes)
        if self.footnotes or self.notes:
            lines.append("")
        lines.append("What one op is in each workload:\n")
        lines.extend(f"- `{w.name}` (op = one {w.unit}): {w.description}" for w in self.selected)
        return "\n".join(lines)


def _repeats_text(repeat, selected: List[Workload]) -> str:
    """"median of 5 runs" or, when groups differ, "median of 5 runs (3 for stream, http)"."""
    if isinstance(repeat, int):  # older --json files
        repeat = {w.name: repeat for w in selected}

    def runs(r: int) -> str:
        return "1 run" if r == 1 else f"median of {r} runs"

    by_group: Dict[str, set] = {}
    for w in selected:
        if w.name in repeat:
            by_group.setdefault(w.group, set()).add(repeat[w.name])
    counts = sorted({r for rs in by_group.values() for r in rs}, reverse=True)
    if len(counts) <= 1:
        return runs(counts[0] if counts else 1)
    main = max(counts, key=lambda r: sum(1 for w in selected if repeat.get(w.name) == r))
    others = ", ".join(
        f"{r} for {', '.join(g for g, rs in by_group.items() if r in rs)}" for r in counts if r != main
    )
    return f"{runs(main)} ({others})"


def _aligned(row: List[str], widths: List[int]) -> str:
    return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))


def fmt_ratio(r: float) -> str:
    return "-" if r != r else f"{r:.2f}x"
