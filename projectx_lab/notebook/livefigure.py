"""A plotly `FigureWidget` that stays correct for views that attach late.

How plotly 7's anywidget FigureWidget holds state (plotly/basewidget.py, widgetbundle.js):

* The kernel keeps the figure in `_data` / `_layout`; every change is sent as a one-shot
  `_py2js_update` / `_py2js_restyle` / `_py2js_relayout` message (assign, then reset to None).
* The synced traits `_widget_data` / `_widget_layout` are snapshots taken at construction and at
  each `display()`. They are what the kernel answers when a frontend asks for the model's state:
  a page reload, Voila's first paint, a second browser. Plotly never refreshes them, so such a
  view would show the figure as it was built.
* In the browser, the model applies each one-shot message to its own copy of the state, so a
  second view in the same page (e.g. "New View for Output") renders the current figure.

So `LiveFigure` answers every state request from the live `_data` / `_layout` (the reload and
Voila case), and reports each new view (ipywidgets' `_view_count`, which plotly enables) so the
owner can push one full update that brings every view, however it was created, up to date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import plotly
import plotly.graph_objects as go

_TRACE_KEYS = ("x", "y", "open", "high", "low", "close")
if not {"_widget_data", "_widget_layout"} <= set(go.FigureWidget.class_trait_names()):
    raise ImportError(
        f"plotly {plotly.__version__} is not supported by the live widgets: they need the "
        "anywidget FigureWidget with _widget_data/_widget_layout state (plotly >= 6.1, < 8)"
    )


class LiveFigure(go.FigureWidget):
    """FigureWidget whose state replies carry the current figure; `on_view()` runs when a view
    attaches (on the kernel's loop with ipykernel >= 7.4)."""

    def __init__(
        self,
        data: Any = None,
        layout: Any = None,
        *,
        on_view: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(data=data, layout=layout)
        self._on_view = on_view
        self.observe(self._views_changed, names="_view_count")

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        state = super().get_state(key, drop_defaults)
        if "_layout_obj" not in self.__dict__:  # plotly's constructor has not finished yet
            return state
        if "_widget_data" in state:
            to_json = self.trait_metadata("_widget_data", "to_json")
            state["_widget_data"] = to_json(self._data, self)
        if "_widget_layout" in state:
            to_json = self.trait_metadata("_widget_layout", "to_json")
            state["_widget_layout"] = to_json(self._layout_obj._props, self)
        return state

    def _views_changed(self, change: dict[str, Any]) -> None:
        if (change["new"] or 0) > (change["old"] or 0) and self._on_view is not None:
            self._on_view()

    def send_full(self, layout_keys: Iterable[str] = ()) -> None:
        """Send every trace's data arrays and the given top-level layout keys as update
        messages, even where nothing changed, so every open view converges on the figure."""
        layout = self._layout_obj._props
        relayout = {k: layout[k] for k in layout_keys if k in layout}
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, trace in enumerate(self._data):
            keys = tuple(k for k in _TRACE_KEYS if k in trace)
            groups.setdefault(keys, []).append(i)
        for keys, indexes in groups.items():
            restyle = {k: [self._data[i][k] for i in indexes] for k in keys}
            self._send_update_msg(restyle, relayout, indexes)
            relayout = {}
        if relayout:
            self._send_relayout_msg(relayout)

    def note_stopped(self) -> None:
        """Append "· stopped" to the title: open views keep the last frame, marked as final."""
        title = self.layout.title
        title.text = f"{title.text or ''} · stopped"
