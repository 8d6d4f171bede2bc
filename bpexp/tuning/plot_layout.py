"""Make Optuna's matplotlib study plots legible at the size they are logged.

Optuna draws every figure at matplotlib's default 6.4 x 4.8 inches, with the full
param names (``optimizer.weight_decay``) as tick labels, which then run off the
canvas ("ptimizer.lr"); its parallel-coordinate labels overlap once a study has more
than a few params, and its intermediate-values plot has one legend entry per trial
(80 for an 80-trial study). :func:`tidy_figure` shortens the names, sizes the figure
for the number of axes, rotates crowded labels, drops a legend too long to read and
lays the figure out so that every label is inside the canvas (the tests check that).
"""

from __future__ import annotations

MAX_LEGEND_ENTRIES = 10
NAME_WIDTH = 18  # characters of a param name kept on a tick label


def short_names(names) -> dict[str, str]:
    """``{full: short}``: the last dotted component (``optimizer.lr`` -> ``lr``) where that is unambiguous."""
    names = [str(n) for n in names]
    last = {n: n.rsplit(".", 1)[-1] for n in names}
    counts: dict[str, int] = {}
    for s in last.values():
        counts[s] = counts.get(s, 0) + 1
    out = {}
    for n in names:
        s = last[n] if counts[last[n]] == 1 else n
        out[n] = s if len(s) <= NAME_WIDTH else s[: NAME_WIDTH - 1] + "…"
    return out


def _short(text: str, names: dict[str, str]) -> str | None:
    """The short name for a label: a full param name, or Optuna's own truncation of one (``optimizer.weight_...``)."""
    if text in names:
        return names[text]
    if text.endswith("..."):
        full = [n for n in names if n.startswith(text[:-3])]
        if len(full) == 1:
            return names[full[0]]
    return None


def _rename_ticks(ax, names: dict[str, str], axis: str) -> None:
    """Replace param names on the ``axis`` tick labels of ``ax``."""
    texts = [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]
    short = [_short(t, names) for t in texts]
    if any(s is not None for s in short):
        ticks = getattr(ax, f"get_{axis}ticks")()
        getattr(ax, f"set_{axis}ticks")(ticks, labels=[s or t for s, t in zip(short, texts)])


def _drop_long_legends(figure) -> None:
    for ax in figure.axes:
        legend = ax.get_legend()
        if legend is not None and len(legend.get_texts()) > MAX_LEGEND_ENTRIES:
            n = len(legend.get_texts())
            legend.remove()
            # one colour per trial is unreadable beyond a handful; the count is what is left to say
            ax.set_title(f"{ax.get_title()}\n({n} trials, one line each)".strip(), fontsize="medium")


def tidy_figure(figure, name: str, params) -> None:
    """Shorten param names, size and lay out ``figure`` (plot ``name``) so every label fits the canvas."""
    names = short_names(params)
    axes = list(figure.axes)
    for ax in axes:
        _rename_ticks(ax, names, "x")
        _rename_ticks(ax, names, "y")
        for axis in ("x", "y"):
            label = getattr(ax, f"get_{axis}label")()
            if _short(label, names):
                getattr(ax, f"set_{axis}label")(_short(label, names))
    if name == "parallel_coordinate":
        n_axes = max(len(ax.get_xticks()) for ax in axes) if axes else 1
        figure.set_size_inches(max(6.4, 1.2 * n_axes + 2.0), 5.2)
        for label in axes[0].get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    elif name == "param_importances":
        figure.set_size_inches(7.2, max(4.8, 0.45 * len(names) + 1.5))
    _drop_long_legends(figure)
    _fit_to_canvas(figure)


def _fit_to_canvas(figure) -> None:
    """``tight_layout`` makes room for tick labels and titles; a colorbar axis it cannot move is then
    kept inside by shrinking everything a little more if needed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not compatible with tight_layout" for twin axes: it still helps
        figure.tight_layout(pad=0.6)
    for _ in range(4):
        overflow = outside_canvas(figure)
        if not overflow:
            return
        left, right = figure.subplotpars.left, figure.subplotpars.right
        bottom, top = figure.subplotpars.bottom, figure.subplotpars.top
        figure.subplots_adjust(left=min(left + 0.04, 0.4), right=max(right - 0.04, 0.6),
                               bottom=min(bottom + 0.04, 0.4), top=max(top - 0.04, 0.6))


def outside_canvas(figure, tolerance: float = 1.0) -> list[str]:
    """The texts of ``figure`` (tick labels, titles, legends...) that are drawn partly outside its canvas."""
    canvas = figure.canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    bad = []
    hidden = _ticks_out_of_view(figure)
    for text in figure.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if not text.get_visible() or not str(text.get_text()).strip() or id(text) in hidden:
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -tolerance or box.y0 < -tolerance or box.x1 > width + tolerance or box.y1 > height + tolerance:
            bad.append(str(text.get_text()))
    return bad


def _ticks_out_of_view(figure) -> set[int]:
    """Ids of tick labels matplotlib does not draw (their tick lies outside the axis' view limits)."""
    hidden = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = (hi - lo) * 1e-9
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    hidden.update((id(tick.label1), id(tick.label2)))
    return hidden
