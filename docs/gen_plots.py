"""Draw the benchmarks page's figures from a ``make bench`` JSON file.

    python docs/gen_plots.py [docs/bench/bench-run.json] [--out docs/bench/img] [--summary]

The JSON is what ``python -m bench --json PATH`` writes: for each workload, each
loop's ops/s of every run.  One figure per group of workloads (loop core,
streams, ...): a bar per loop (stdlib, uvloop, uvloop_like) beside each other for
each workload, as the median of the runs relative to stdlib's median, with a
line from the slowest to the fastest run.  Ratios, not ops/s, because the
workloads of one group differ by orders of magnitude.  ``summary.svg`` has each
group's geometric mean.  ``--summary`` prints that as a Markdown table (the
README's).

This file is also the mkdocs hook (mkdocs.yml ``hooks:``): ``make docs`` redraws
the figures before every build, so the page always shows the checked-in run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_JSON = os.path.join(HERE, "bench", "bench-run.json")
DEFAULT_OUT = os.path.join(HERE, "bench", "img")
# Other runs the page shows, each drawn with its own file name prefix.
EXTRA_RUNS = {"pypy-": os.path.join(HERE, "bench", "bench-pypy-core.json")}

LOOPS = ("stdlib", "uvloop", "uvloop_like")
COLOURS = {"stdlib": "#9e9e9e", "uvloop": "#4c72b0", "uvloop_like": "#dd8452"}
GROUP_TITLES = {
    "core": "Loop core",
    "stream": "TCP and unix echo servers",
    "http": "HTTP (aiohttp)",
    "udp": "UDP echo",
    "subprocess": "Subprocesses",
    "tls": "TLS echo",
    "other": "Other workloads",
}
SHORT_TITLES = {"core": "Loop core", "stream": "Echo servers", "http": "HTTP", "udp": "UDP",
                "subprocess": "Subprocesses", "tls": "TLS", "other": "Other"}


def workload_groups():
    """{workload name: group} from the bench package's registry (the order of
    ``python -m bench --list``); empty if it cannot be imported."""
    sys.path.insert(0, ROOT)
    try:
        from bench import registry, workloads

        workloads.load_all()
        return {w.name: w.group for w in registry.WORKLOADS.values()}
    except Exception:  # the figures still come out, in one "other" group
        return {}
    finally:
        sys.path.remove(ROOT)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def grouped(data):
    """[(group, [workload, ...])] in registry order, workloads with a stdlib median only."""
    order = workload_groups()
    runs = data["runs"]
    names = [n for n in order if n in runs] + sorted(n for n in runs if n not in order)
    groups = {}
    for name in names:
        if runs[name].get("stdlib"):
            groups.setdefault(order.get(name, "other"), []).append(name)
    return list(groups.items())


def ratios(data, name, loop):
    """(median, slowest, fastest) of ``loop``'s runs over stdlib's median, or None."""
    values = data["runs"][name].get(loop) or []
    base = statistics.median(data["runs"][name]["stdlib"])
    if not values or base <= 0:
        return None
    return statistics.median(values) / base, min(values) / base, max(values) / base


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def group_means(data):
    """{group: {loop: geometric mean of the median ratios to stdlib}}."""
    out = {}
    for group, names in grouped(data):
        out[group] = {}
        for loop in LOOPS:
            found = [ratios(data, n, loop) for n in names]
            out[group][loop] = geomean([r[0] for r in found if r]) if all(found) else None
    return out


def summary_markdown(data):
    """The README's table: uvloop_like against stdlib and against uvloop, per group."""
    lines = ["| workloads | uvloop_like vs stdlib | uvloop_like vs uvloop |", "| --- | ---: | ---: |"]
    counts = dict((g, len(ns)) for g, ns in grouped(data))
    for group, means in group_means(data).items():
        like, uv = means.get("uvloop_like"), means.get("uvloop")
        vs_uv = "%.2fx" % (like / uv) if like and uv else "-"
        lines.append("| %s (%d) | %s | %s |" % (GROUP_TITLES.get(group, group), counts[group],
                                                "%.2fx" % like if like else "-", vs_uv))
    return "\n".join(lines)


def _setup_matplotlib():
    import matplotlib

    matplotlib.use("Agg")  # no display; set before pyplot is imported
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "uvloop_like", "font.size": 9})
    return plt


def _save(fig, path):
    # No date in the metadata: the same JSON gives the same file.
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})


def plot_group(plt, data, group, names, path):
    loops = [lp for lp in LOOPS if any(data["runs"][n].get(lp) for n in names)]
    height = 0.8 / len(loops)
    fig, ax = plt.subplots(figsize=(7.5, max(2.4, 1.3 + 0.55 * len(names) * len(loops) / 3)))
    for i, loop in enumerate(loops):
        ys, xs, lo, hi = [], [], [], []
        for row, name in enumerate(names):
            r = ratios(data, name, loop)
            if r is None:
                continue
            ys.append(row + (i - (len(loops) - 1) / 2) * height)
            xs.append(r[0])
            lo.append(r[0] - r[1])
            hi.append(r[2] - r[0])
        ax.barh(ys, xs, height=height, color=COLOURS.get(loop), label=loop,
                xerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
        for y, x, up in zip(ys, xs, hi):
            ax.text(x + up + 0.04, y, "%.2fx" % x, va="center", fontsize=7)  # right of the run range
    ax.axvline(1.0, color="#333333", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("ops/s relative to stdlib asyncio (median of runs; line: slowest to fastest run). Higher is faster.")
    ax.set_title(GROUP_TITLES.get(group, group))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_xlim(0, max(ax.get_xlim()[1], 1.2) * 1.08)
    _save(fig, path)
    plt.close(fig)


def plot_summary(plt, data, path):
    means = group_means(data)
    groups = list(means)
    loops = [lp for lp in LOOPS if any(means[g].get(lp) for g in groups)]
    width = 0.8 / len(loops)
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for i, loop in enumerate(loops):
        xs = [g + (i - (len(loops) - 1) / 2) * width for g in range(len(groups))]
        ys = [means[g].get(loop) or 0 for g in groups]
        ax.bar(xs, ys, width=width, color=COLOURS.get(loop), label=loop)
        for x, y in zip(xs, ys):
            if y:
                ax.text(x, y + 0.03, "%.2f" % y, ha="center", fontsize=7)
    ax.axhline(1.0, color="#333333", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([SHORT_TITLES.get(g, g) for g in groups], fontsize=8)
    ax.set_ylabel("geometric mean, relative to stdlib")
    ax.set_title("Each group of workloads, relative to stdlib asyncio (higher is faster)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    _save(fig, path)
    plt.close(fig)


def render(json_path=DEFAULT_JSON, out_dir=DEFAULT_OUT, prefix=""):
    """Write <prefix>summary.svg and <prefix><group>.svg into out_dir; return their paths."""
    data = load(json_path)
    plt = _setup_matplotlib()
    os.makedirs(out_dir, exist_ok=True)
    written = [os.path.join(out_dir, prefix + "summary.svg")]
    plot_summary(plt, data, written[0])
    for group, names in grouped(data):
        path = os.path.join(out_dir, "%s%s.svg" % (prefix, group))
        plot_group(plt, data, group, names, path)
        written.append(path)
    return written


def _up_to_date(json_path, out_dir, prefix=""):
    stamp = os.path.join(out_dir, prefix + "summary.svg")
    newest_input = max(os.path.getmtime(p) for p in (json_path, os.path.abspath(__file__)))
    return os.path.exists(stamp) and os.path.getmtime(stamp) >= newest_input


def on_pre_build(config, **kwargs):
    """mkdocs hook: redraw the figures when the JSON or this script changed
    (not on every rebuild, so that ``mkdocs serve`` does not loop on them)."""
    if not _up_to_date(DEFAULT_JSON, DEFAULT_OUT):
        render()
    for prefix, path in EXTRA_RUNS.items():
        if os.path.exists(path) and not _up_to_date(path, DEFAULT_OUT, prefix):
            render(path, DEFAULT_OUT, prefix)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="?", default=DEFAULT_JSON)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--summary", action="store_true", help="print the README's summary table and exit")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary_markdown(load(args.json)))
        return 0
    for path in render(args.json, args.out):
        print(path)
    if args.json == DEFAULT_JSON:
        for prefix, path in EXTRA_RUNS.items():
            if os.path.exists(path):
                for written in render(path, args.out, prefix):
                    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
