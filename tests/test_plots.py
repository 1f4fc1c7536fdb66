from helpers import memory, plots

SOURCE = "test · profile smoke · CPU · 2026-01-01"


def footer(fig):
    return [t.get_text() for t in fig.texts]


def test_binned_averages_by_x():
    xs, ys = plots.binned([1, 2, 3, 4, 5, 6], [1, 3, 5, 7, 9, 11], width=2)
    assert xs == [1.0, 3.0, 5.0] and ys == [2.0, 6.0, 10.0]


def test_smooth_is_a_trailing_mean():
    assert plots.smooth([2, 4, 6, 8], 2) == [2, 3, 5, 7]
    assert plots.smooth([1, 2], 5) == [1, 2]


def test_every_figure_carries_its_source(tmp_path):
    tracker = memory.MemoryTracker("t").start()
    tracker.mark(1)
    tracker.stop()
    figures = [
        plots.loss_curves({"a": ([1, 2, 3], [3, 2, 1])}, SOURCE, bin_width=2),
        plots.metric_curves({"acc": ([1, 2], [0.5, 0.7])}, SOURCE),
        plots.memory_timeline([tracker], SOURCE),
        plots.panel_of_bars({"s": {"a": 1.0}, "GiB": {"a": 2.0}}, SOURCE, "runs"),
        plots.estimate_vs_measured({"a": 1.0}, {"a": 1.1}, SOURCE),
    ]
    for i, fig in enumerate(figures):
        assert SOURCE in footer(fig)
        path = plots.save(fig, tmp_path, f"fig{i}")
        assert path.stat().st_size > 5000


def test_source_line_names_device_and_date():
    line = plots.source_line("04_x", "smoke")
    assert line.startswith("04_x · profile smoke · ") and line[-10:-6] in ("2026", "2027", "2028")
