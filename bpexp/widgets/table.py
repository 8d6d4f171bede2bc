"""One sortable, filterable, multi-select table widget over a :class:`~bpexp.widgets.tabledata.TableSource`.

The rows are the options of a single ``SelectMultiple`` (aligned monospace text), not a
widget per row: 500 runs are one list, and sorting or filtering replaces its options once.
The best row is marked ★ and highlighted with a CSS rule scoped to this widget.
"""

from __future__ import annotations

import html
import itertools

import ipywidgets as W

from bpexp.widgets.tabledata import Table, TableSource

_ids = itertools.count(1)
_ANY = "any value"


def png_image(**layout) -> W.Image:
    """An Image widget for a matplotlib PNG, shown at its own size (never stretched to the
    container's width, as a flex box would) and shrunk only when the page is narrower."""
    return W.Image(format="png", layout=W.Layout(max_width="100%", width="auto", height="auto",
                                                 align_self="flex-start", **layout))


class TableView(W.VBox):
    """Filter box, param/value filter, sort column and direction, refresh, and the rows.

    Parameters
    ----------
    source : TableSource
        Gives the rows; ``source.refresh()`` runs on Refresh.
    rows : int
        Visible rows of the list (it scrolls).
    noun : str
        What a row is ("runs", "trials"), for the status line.

    Attributes
    ----------
    selected : tuple of str
        Ids of the selected rows (read/write), including selected rows the current
        filter hides: they stay selected and show again, selected, when it is cleared.
    table : Table
        What is shown now.
    """

    def __init__(self, source: TableSource, rows: int = 12, noun: str = "runs"):
        self.source, self.noun = source, noun
        self._listeners: list = []
        self._change_listeners: list = []
        self._hidden_selected: tuple[str, ...] = ()  # selected, but hidden by the filter: kept, not dropped
        self._muted = False
        self.css_class = f"bpexp-table-{next(_ids)}"
        self.search = W.Text(placeholder=f"filter {noun}: any text", layout=W.Layout(width="220px"))
        self.param = W.Dropdown(layout=W.Layout(width="210px"))
        self.value = W.Dropdown(options=[_ANY], value=_ANY, disabled=True, layout=W.Layout(width="150px"))
        self.sort = W.Dropdown(description="sort", layout=W.Layout(width="230px"),
                               style={"description_width": "32px"})
        self.order = W.ToggleButtons(options=[("↑", False), ("↓", True)], tooltips=["ascending", "descending"],
                                     style={"button_width": "32px"})
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="reload from the store",
                                       layout=W.Layout(width="95px"))
        self.header = W.HTML()
        self.rows = W.SelectMultiple(options=[], rows=rows, layout=W.Layout(width="max-content", min_width="100%"))
        # Header and rows in one horizontally scrolling box: in a narrow window they scroll together,
        # so values stay under their headings (the list alone would scroll and the header would not).
        self.scroller = W.Box([self.header, self.rows],
                              layout=W.Layout(display="flex", flex_flow="column", width="100%"))
        self.scroller.add_class("bpexp-table-scroll")
        self.status = W.HTML()
        self._fill_controls()
        for widget in (self.search, self.value, self.order):
            widget.observe(self._changed, "value")
        self.param.observe(self._param_changed, "value")
        self.sort.observe(self._sort_changed, "value")
        self.rows.observe(self._selection_changed, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        controls = W.HBox([self.search, self.param, self.value, self.sort, self.order, self.refresh_button],
                          layout=W.Layout(flex_flow="row wrap"))
        super().__init__([controls, self.scroller, self.status])
        self.add_class(self.css_class)
        self.render()

    # ------------------------------------------------------------------ public
    @property
    def selected(self) -> tuple[str, ...]:
        return tuple(self.rows.value) + tuple(i for i in self._hidden_selected if i not in self.rows.value)

    @selected.setter
    def selected(self, ids) -> None:
        ids = tuple(dict.fromkeys(ids))
        visible = set(self.table.ids)
        self._hidden_selected = tuple(i for i in ids if i not in visible)
        self.rows.value = tuple(i for i in ids if i in visible)

    def on_select(self, callback) -> None:
        """Call ``callback(selected_ids)`` whenever the selection changes."""
        self._listeners.append(callback)

    def on_change(self, callback) -> None:
        """Call ``callback()`` after the rows change (filter, sort, refresh): stale messages can go."""
        self._change_listeners.append(callback)

    def refresh(self) -> None:
        """Reload the source and redraw, keeping the filter, the sort and the selection."""
        self.refresh_button.disabled = True
        try:
            self.source.refresh()
            self._fill_controls()
            self.render()
            self._notify()  # selected runs may have new data
        finally:
            self.refresh_button.disabled = False

    def render(self) -> Table:
        """Recompute the visible rows from the controls and redraw them."""
        param = self.param.value or None
        value = self.value.value if param is not None and self.value.value != _ANY else None
        self.table = table = self.source.table(sort=self.sort.value, descending=self.order.value,
                                               text=self.search.value, param=param, value=value)
        header, lines = table.lines()
        before = self.selected
        visible = set(table.ids)
        self._muted = True  # replacing options clears the selection: restore it without two events
        try:
            # non-breaking spaces: browsers collapse runs of spaces in <option> text
            self.rows.options = [(line.replace(" ", "\u00a0"), i) for line, i in zip(lines, table.ids)]
            self.rows.value = tuple(i for i in before if i in visible)
            self._hidden_selected = tuple(i for i in before if i not in visible)
        finally:
            self._muted = False
        self.header.value = self._style(table) + f'<pre class="bpexp-table-header">{html.escape(header)}</pre>'
        self._update_status()
        if self.selected != before:
            self._notify()
        for callback in self._change_listeners:
            callback()
        return table

    # ------------------------------------------------------------------ internals
    def _fill_controls(self) -> None:
        self._muted = True
        try:
            params = self.source.filter_params()
            current = self.param.value
            # "" rather than None: a None value shows as an empty dropdown instead of its label
            self.param.options = [("filter by param…", ""), *params]
            self.param.value = current if current in [p for _, p in params] else ""
            sorts = [(c.title, c.key) for c in self.source.columns]
            current = self.sort.value
            self.sort.options = sorts
            keep = current in [k for _, k in sorts]
            self.sort.value = current if keep else self.source.default_sort
            if not keep:
                self.order.value = self.source.default_descending(self.sort.value)
            self._fill_values()
        finally:
            self._muted = False

    def _fill_values(self) -> None:
        param = self.param.value or None
        values = self.source.param_values(param) if param is not None else []
        current = self.value.value
        self.value.options = [_ANY, *values]
        self.value.value = current if current in values else _ANY
        self.value.disabled = param is None

    def _changed(self, _change=None) -> None:
        if not self._muted:
            self.render()

    def _param_changed(self, _change) -> None:
        if self._muted:
            return
        self._muted = True
        try:
            self._fill_values()
        finally:
            self._muted = False
        self.render()

    def _sort_changed(self, change) -> None:
        if self._muted:
            return
        self._muted = True  # a new column starts in its natural direction (metrics: best first)
        try:
            self.order.value = self.source.default_descending(change["new"])
        finally:
            self._muted = False
        self.render()

    def _selection_changed(self, _change) -> None:
        self._update_status()
        if not self._muted:
            self._notify()

    def _notify(self) -> None:
        for callback in self._listeners:
            callback(self.selected)

    def _update_status(self) -> None:
        t = self.table
        shown = f"{len(t.records)} of {t.total}" if len(t.records) != t.total else f"{t.total}"
        parts = [f"{shown} {self.noun}"]
        if t.best_id is not None and t.sort_key:
            best = next((r for r in t.records if r.id == t.best_id), None)
            if best is not None:
                metric = self.source.column(self.source.default_sort).title if self.source.default_sort else ""
                parts.append(f"★ best: <b>{html.escape(str(best.values.get('name', best.id)))}</b> by {metric}")
        if self.selected:
            hidden = len(self._hidden_selected)
            parts.append(f"{len(self.selected)} selected" + (f" ({hidden} hidden by the filter)" if hidden else ""))
        self.status.value = '<span style="color:#555">' + " · ".join(parts) + "</span>"

    def _style(self, table: Table) -> str:
        """CSS scoped to this widget: monospace rows (the columns line up) and the best row highlighted."""
        scope = f".{self.css_class}"
        css = [f"{scope} select, {scope} pre.bpexp-table-header {{ font-family: var(--jp-code-font-family, "
               f"monospace); font-size: 12px; }}",
               f"{scope} pre.bpexp-table-header {{ margin: 4px 0 0 0; padding: 0 5px; font-weight: bold; "
               f"white-space: pre; overflow: visible; }}",
               # one scroll bar for header and rows; the list itself never scrolls sideways
               f"{scope} .bpexp-table-scroll {{ overflow-x: auto; overflow-y: hidden; }}",
               f"{scope} .bpexp-table-scroll > .widget-html, {scope} .bpexp-table-scroll > .widget-select-multiple "
               f"{{ width: max-content; min-width: 100%; }}",
               f"{scope} .bpexp-table-scroll select {{ overflow-x: hidden; width: max-content; min-width: 100%; }}",
               ]
        if table.best_id in table.ids:
            nth = table.ids.index(table.best_id) + 1
            # text colour, not background: the browser's selection background must stay visible
            css.append(f"{scope} select option:nth-child({nth}) {{ color: #1b5e20; font-weight: bold; }}")
        return "<style>" + "\n".join(css) + "</style>"

    def __repr__(self) -> str:
        return f"TableView({self.noun}={self.table.total}, shown={len(self.table.records)})"
