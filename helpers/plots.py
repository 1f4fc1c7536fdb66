"""Figures the notebooks share: loss curves, metrics over evaluation, memory, comparisons.

Every figure carries a footer saying where its numbers come from (notebook, profile, device,
date): a plot copied out of context still says what it shows. `save(fig, name)` writes it as PNG
beside the notebook's measurement record.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from . import runtime


def source_line(notebook: str, profile: str) -> str:
    gpu = runtime.gpu_info()
    device = f"{gpu['name']} x{gpu['count']}" if gpu["count"] else "CPU"
    if gpu.get("emulated_on"):     # NB_EMULATE=T4: say which GPU stood in
        device = f"{gpu['name']} emulated on {gpu['emulated_on']} x{gpu['count']}"
    return f"{notebook} · profile {profile} · {device} · {runtime.today()}"


def stamp(fig, text: str):
    """Write the source line at the bottom of a figure."""
    fig.text(0.99, 0.005, text, ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def smooth(values, window: int):
    """Trailing moving average (window >= 1); short inputs come back as they are."""
    if window <= 1 or len(values) < window:
        return list(values)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def binned(xs, ys, width: float):
    """Average `ys` over consecutive bins of `width` on the x axis: (bin centres, means).

    Runs that log at different rates (every sample, every 16 samples) become comparable.
    """
    if width <= 0:
        return list(xs), list(ys)
    sums: dict[int, list] = {}
    for x, y in zip(xs, ys):
        bucket = sums.setdefault(int((x - 1e-9) // width), [0.0, 0])
        bucket[0] += y
        bucket[1] += 1
    keys = sorted(sums)
    return [(k + 0.5) * width for k in keys], [sums[k][0] / sums[k][1] for k in keys]


# Curves that coincide (accumulation and the big batch it reproduces) stay visible when drawn in
# different styles.
LINE_STYLES = ["-", "--", "-.", ":"] * 8


def loss_curves(curves: dict, source: str, x_label: str = "optimizer step", smooth_window: int = 1,
                title: str = "Training loss", log_y: bool = False, bin_width: float = 0):
    """One line per run: `curves` maps a run name to (x values, loss values).

    `bin_width` averages over bins of the x axis (e.g. 128 samples seen); `smooth_window` is a
    moving average over points instead.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, (xs, ys)), style in zip(curves.items(), LINE_STYLES):
        if bin_width:
            xs, ys = binned(list(xs), list(ys), bin_width)
        ax.plot(xs, smooth(list(ys), smooth_window), style, label=name, lw=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_label)
    what = f" (mean per {bin_width:g})" if bin_width else ""
    ax.set_ylabel("loss" + (f" (moving average of {smooth_window})" if smooth_window > 1 else what))
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return stamp(fig, source)


def metric_curves(history: dict, source: str, x_label: str = "optimizer step", title: str = "Metrics"):
    """`history` maps a metric name to (x values, values); one line each, values 0..1."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, (xs, ys)), style in zip(history.items(), LINE_STYLES):
        ax.plot(xs, ys, style, marker="o", ms=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_label)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return stamp(fig, source)


def memory_timeline(trackers: list, source: str, title: str = "Memory per step"):
    """Memory against step for MemoryTrackers (GPU: allocated, reserved, device; CPU: RSS)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for tracker in trackers:
        steps = [r["step"] for r in tracker.rows]
        if tracker.on_gpu:
            for key, style in (("allocated_gib", "-"), ("reserved_gib", "--"), ("device_gib", ":")):
                values = [r.get(key) for r in tracker.rows]
                if any(v is not None for v in values):
                    ax.plot(steps, values, style, label=f"{tracker.name}: {key.replace('_gib', '')}")
        else:
            ax.plot(steps, [r["rss_gib"] for r in tracker.rows], label=f"{tracker.name}: process RSS")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("GiB")
    ax.set_ylim(bottom=0)                  # from zero: a small change should look small
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return stamp(fig, source)




def panel_of_bars(panels: dict, source: str, title: str):
    """Several bar charts side by side: `panels` maps (ylabel) to {run name: value}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, (label, values) in zip(axes, panels.items()):
        names = list(values)
        ax.bar(range(len(names)), [values[n] for n in names], color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        for i, n in enumerate(names):
            ax.text(i, values[n], f"{values[n]:.3g}", ha="center", va="bottom", fontsize=7)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return stamp(fig, source)


def estimate_vs_measured(estimated: dict, measured: dict, source: str, unit: str = "GiB",
                         title: str = "Estimated against measured"):
    """Paired bars per run: the estimate before training next to what was measured."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(measured)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [estimated.get(n, 0) for n in names], width=0.4, label="estimated")
    ax.bar([x + 0.2 for x in xs], [measured[n] for n in names], width=0.4, label="measured")
    top = max([measured[n] for n in names] + [estimated.get(n, 0) for n in names] + [1e-9])
    for x, n in zip(xs, names):   # the estimate's error over each pair: what a reader checks first
        if measured[n] and estimated.get(n):
            ax.text(x, max(measured[n], estimated[n]) + 0.02 * top, f"{estimated[n] / measured[n] - 1:+.0%}",
                    ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, top * 1.3)      # room for the errors and the legend above the bars
    ax.set_xticks(list(xs), names, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(ncol=2, fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return stamp(fig, source)


def save(fig, out_dir, name: str) -> Path:
    """Write `fig` as `<out_dir>/<name>.png` and return the path."""
    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path
