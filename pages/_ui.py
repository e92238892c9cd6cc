"""Drawing helpers every console page may use: charts, maps, tables, errors, formatting.

No SQL and no torch here; nothing here calls the engine either (pages do, then draw with these).
Maps are drawn without a base map (no tiles are fetched), so they work on a machine without
internet access: points and circles on a plain background, with a tooltip.
"""
from __future__ import annotations

import functools
import html
import math
import re
import sys
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go
import pydeck as pdk
import streamlit as st

from beacon.actions import Actor
from beacon.failures import one_line

#: one palette for every chart, so a strategy or a status keeps its colour across pages
PALETTE = ["#2F6FEB", "#E8710A", "#12B5CB", "#D93025", "#9334E6", "#188038", "#F9AB00", "#5F6368"]
STATUS_COLORS = {
    "succeeded": "#188038", "active": "#188038", "running": "#2F6FEB", "queued": "#5F6368",
    "skipped": "#F9AB00", "failed": "#D93025", "abandoned": "#D93025", "inactive": "#5F6368",
}
KEPT_RGBA = [24, 128, 56, 200]
DROPPED_RGBA = [217, 48, 37, 170]
USER_RGBA = [47, 111, 235, 230]


# ----------------------------------------------------------------------------- formatting
def fmt_age(when: datetime | None, now: datetime | None = None) -> str:
    """'3 min ago', '5 h ago', '2 d ago'; '—' when unknown."""
    if when is None:
        return "—"
    now = now or datetime.now(timezone.utc)
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 90:
        return f"{int(seconds)} s ago"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} d ago"


def fmt_time(when: datetime | None) -> str:
    if when is None:
        return "—"
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{100 * value:.{digits}f}%"
    )


def fmt_num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.{digits}f}"
    )


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


# ----------------------------------------------------------------------------- text from data
#: what Markdown, GFM autolinks (www., emails), Streamlit directives or LaTeX could act on
_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+.!|~:$&\"'=@")


def chart_text(text: object) -> str:
    """Text from data for a Plotly label, tick or hover: Plotly draws a few HTML tags (<a href>
    among them) in those, so '<' and '>' and '&' become entities, which it shows as the
    characters themselves."""
    return html.escape(str(text), quote=False)


#: what GFM's autolinker would make a link of: an email address, or a word with '://' or 'www.'
_LINKISH = re.compile(r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+|\S*(?:://|www\.)\S*", re.IGNORECASE)


def plain(text: object) -> str:
    """Text from data or the URL made inert for the places that only take Markdown (an alert,
    a heading, a progress label): line breaks become spaces, and every punctuation character
    that Markdown, Streamlit's :colour[...] / :material/icon: directives or LaTeX could read is
    backslash-escaped. Escapes do not stop the GFM autolinker (it runs on the text they leave),
    so what it would link (an address, a URL) goes into a code span, where nothing is parsed
    and the text copies as it is. Prefer st.text, st.code or a dataframe cell where a whole
    value may be copied."""
    flat = " ".join(str(text).split())
    out, last = [], 0
    for match in _LINKISH.finditer(flat):
        out.append(_escaped(flat[last:match.start()]))
        # a code span cannot hold its own fence: such a rare word gets a zero-width space instead
        word = match.group(0)
        out.append(f"`{word}`" if "`" not in word else _escaped(
            re.sub(r"(?i)(://|www\.|@)", lambda m: m.group(1)[0] + "\u200b" + m.group(1)[1:]
                   if m.group(1) != "@" else "\u200b@", word)))
        last = match.end()
    out.append(_escaped(flat[last:]))
    return "".join(out)


def _escaped(text: str) -> str:
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def sentence(text: str) -> str:
    """`text` as a sentence: its first letter upper case (the rest as written, unlike
    str.capitalize) and a full stop."""
    return text[:1].upper() + text[1:] + "."


# ----------------------------------------------------------------------------- who acts
ACTOR_KEY = "beacon_actor"


def actor() -> Actor:
    """The signed-in operator this session acts as (every state-changing call passes it).
    dashboard.py signs the session in before any page runs; a page without one stops."""
    signed_in = st.session_state.get(ACTOR_KEY)
    if not isinstance(signed_in, Actor):
        st.stop()
    return signed_in


def may(action: str) -> bool:
    """Whether the signed-in operator may perform `action` (pages offer only what is)."""
    from beacon.actions import allowed

    return allowed(st.session_state.get(ACTOR_KEY), action)


# ----------------------------------------------------------------------------- errors

def routed(page_file: str) -> None:
    """Send a page that Streamlit ran without the router back through dashboard.py.

    A fresh server whose very first request is a deep link (e.g. /debug_filter?user=...) runs the
    page straight from pages/ (Streamlit's old folder mode lasts until the first st.navigation
    call): no frame, no schema check, helper modules listed as pages. Hand the target and its
    query parameters to the router, which switches to it once navigation is set up.
    """
    target = f"pages/{Path(page_file).name}"
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # the private flag moved: nothing to guard against any more
        return
    # AppTest resets the flag before every run and runs a switched-to page on its own; routing
    # there would only drop the test's widget state. A real server never resets it.
    if not PagesManager.uses_pages_directory or "streamlit.testing.v1.app_test" in sys.modules:
        pending = st.session_state.get(DEEP_LINK_KEY)
        if pending is not None and pending[0] == target:
            del st.session_state[DEEP_LINK_KEY]  # arrived: the router stops sending it here
        return
    st.session_state[DEEP_LINK_KEY] = (target, st.query_params.to_dict(), 0)
    st.switch_page("dashboard.py")


def pending_deep_link() -> tuple[str, dict] | None:
    """The page and query a deep link still waits for, counting this try; None when there is
    none or it was tried too often. It stays in the session until its page runs (`routed`):
    a rerun that a component asks for at the same moment (the cookie manager reporting back
    after sign-in) can override the switch, and the router then simply switches again."""
    pending = st.session_state.get(DEEP_LINK_KEY)
    if pending is None:
        return None
    target, query, tries = pending
    if tries >= DEEP_LINK_TRIES:
        del st.session_state[DEEP_LINK_KEY]
        return None
    st.session_state[DEEP_LINK_KEY] = (target, query, tries + 1)
    return target, query


DEEP_LINK_KEY = "_beacon_deep_link"
DEEP_LINK_TRIES = 5


def error_box(error: BaseException | str, hint: str | None = None) -> None:
    """A clear message for what a person can fix; never a traceback. The message may echo
    what was typed or found in the data, so it is shown inert (`plain`); the hint is ours."""
    message = failure_text(error) if isinstance(error, BaseException) else error
    st.error(plain(message) + (f"\n\n{hint}" if hint else ""), icon=":material/error:")


def failure_text(error: BaseException) -> str:
    """The one line for any failure (the same translator as the CLI's)."""
    return one_line(error, context="console")


def failure_box(error: BaseException) -> None:
    """Any failure as the one line the CLI would print (database gone, busy, read-only, …);
    a bug's traceback goes to the log file that the line names."""
    st.error(failure_text(error), icon=":material/error:")


def guarded(function):
    """For fragments, which rerun on their own: a failure becomes a failure_box, never
    Streamlit's exception panel."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - shown as one line; reruns pass (BaseException)
            failure_box(error)
            return None
    return wrapper


def run_action(label: str, function, *args, **kwargs) -> Any:
    """Call a service; any failure becomes an error box and the result None."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - one line, as everywhere
        failure_box(error)
        return None


# ----------------------------------------------------------------------------- charts
def style(fig: go.Figure, *, height: int = 320, title: str | None = None,
          y_title: str | None = None, x_title: str | None = None) -> go.Figure:
    """The console's Plotly defaults: white template, tight margins, legend on top."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=10, r=10, t=75 if title else 30, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        colorway=PALETTE,
        title=dict(text=title, x=0, xref="paper", y=0.98, yref="container", yanchor="top",
                   font=dict(size=15)) if title else None,
        hovermode="x unified",
    )
    if y_title is not None:
        fig.update_layout(yaxis_title=y_title)
    if x_title is not None:
        fig.update_layout(xaxis_title=x_title)
    return fig


def chart(fig: go.Figure, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


#: what each phase of a fit's history is called in a loss chart ("" for the main curve)
_PASS_NAMES = {"train": "", "refit": "refit on all data",
               "retry": "at a higher learning rate", "discarded": "discarded run"}


def loss_figure(points: Sequence[dict], total_epochs: int | None = None,
                title: str | None = "Training loss per epoch") -> go.Figure:
    """Loss (and the validation metric when present, on a second axis) per epoch."""
    frame = pd.DataFrame(list(points), columns=["epoch", "loss", "val_metric", "phase"])
    # A training may restart its epoch count (a refit on all data after early stopping, a
    # second run at a higher learning rate): each restart is drawn as its own line.
    frame["part"] = (frame["epoch"].diff() <= 0).cumsum()
    fig = go.Figure()
    for part, rows in frame.groupby("part", sort=True):
        phase = rows["phase"].iloc[0]
        name = _PASS_NAMES[phase] if phase in _PASS_NAMES else \
            ("" if part == 0 else "refit on all data" if part == 1 else f"pass {part + 1}")
        later = PALETTE[2 + (part - 1) % 4]  # the first part keeps the palette's first two
        fig.add_trace(go.Scatter(
            x=rows["epoch"], y=rows["loss"], mode="lines+markers",
            name=f"loss, {name}" if name else "loss",
            line=dict(color=PALETTE[0] if part == 0 else later)))
        if rows["val_metric"].notna().any():
            fig.add_trace(go.Scatter(
                x=rows["epoch"], y=rows["val_metric"], mode="lines+markers", yaxis="y2",
                name=f"validation, {name}" if name else "validation metric",
                line=dict(color=PALETTE[1] if part == 0 else later, dash="dot")))
    if frame["val_metric"].notna().any():
        fig.update_layout(yaxis2=dict(overlaying="y", side="right", title="validation",
                                      showgrid=False))
    last = max(total_epochs or 0, int(frame["epoch"].max()) if len(frame) else 1, 1)
    fig.update_xaxes(range=[0.5, last + 0.5], dtick=max(1, math.ceil(last / 12)))
    return style(fig, title=title, x_title="epoch", y_title="loss")


def interval_figure(rows: Sequence[dict], label: str, value: str = "rate",
                    low: str = "low", high: str = "high", title: str | None = None) -> go.Figure:
    """Rates with confidence intervals as error bars (one bar per row)."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return style(go.Figure(), title=title)
    frame[label] = frame[label].map(chart_text)  # categories and strategies come from data
    fig = go.Figure(go.Bar(
        x=frame[label], y=frame[value],
        error_y=dict(type="data", symmetric=False,
                     array=(frame[high] - frame[value]).clip(lower=0),
                     arrayminus=(frame[value] - frame[low]).clip(lower=0)),
        marker_color=PALETTE[0],
        hovertemplate="%{x}: %{y:.2%}<extra></extra>",
    ))
    fig.update_yaxes(tickformat=".1%")
    fig.update_layout(hovermode="closest")
    return style(fig, title=title)


def funnel_figure(stages: Sequence[tuple[str, int]], title: str | None = None) -> go.Figure:
    fig = go.Figure(go.Funnel(y=[s for s, _ in stages], x=[n for _, n in stages],
                              textinfo="value+percent initial", marker_color=PALETTE[0]))
    fig.update_layout(hovermode="closest")
    return style(fig, title=title)


def mark_times(fig: go.Figure, moments: Iterable[tuple[datetime, str]]) -> go.Figure:
    """Vertical dashed lines (model activations, say) with a short label."""
    for when, label in moments:
        fig.add_vline(x=when, line_dash="dash", line_color="#9AA0A6", line_width=1)
        fig.add_annotation(x=when, y=1, yref="paper", text=label, showarrow=False,
                           textangle=-90, xanchor="right", yanchor="top",
                           font=dict(size=10, color="#5F6368"))
    return fig


# ----------------------------------------------------------------------------- maps
def _zoom_for(points: pd.DataFrame, radius_km: float | None) -> float:
    spread_km = 1.0
    if len(points) > 1:
        lat_span = float(points["lat"].max() - points["lat"].min()) * 111.0
        lon_span = float(points["lon"].max() - points["lon"].min()) * 111.0 * max(
            0.2, math.cos(math.radians(float(points["lat"].mean())))
        )
        spread_km = max(spread_km, lat_span, lon_span)
    if radius_km:
        spread_km = max(spread_km, 2 * radius_km)
    return max(1.0, min(14.0, math.log2(40000.0 / spread_km) - 0.5))


def point_map(points: pd.DataFrame, *, circles: Sequence[dict] = (), color_column: str | None = None,
              tooltip: str = "{label}", height: int = 420, key: str | None = None) -> None:
    """Points (columns lat, lon, label; optional an RGBA list in `color_column`) and circles
    ({"lat", "lon", "radius_km", "label"}), on no base map so it works offline."""
    points = points.dropna(subset=["lat", "lon"]).copy()
    if "label" not in points:
        points["label"] = ""
    if color_column is None:
        points["_color"] = [PALETTE_RGBA[0]] * len(points)
        color_column = "_color"
    circle_frame = pd.DataFrame(list(circles), columns=["lat", "lon", "radius_km", "label"])
    everything = pd.concat([points[["lat", "lon"]], circle_frame[["lat", "lon"]]]).dropna()
    if everything.empty:
        st.info("Nothing with a location to show on the map.")
        return
    radius = float(circle_frame["radius_km"].max()) if not circle_frame.empty else None
    view = pdk.ViewState(latitude=float(everything["lat"].mean()),
                         longitude=float(everything["lon"].mean()),
                         zoom=_zoom_for(everything, radius))
    layers = []
    if not circle_frame.empty:
        circle_frame["radius_m"] = circle_frame["radius_km"] * 1000.0
        layers.append(pdk.Layer(
            "ScatterplotLayer", data=circle_frame, get_position="[lon, lat]",
            get_radius="radius_m", stroked=True, filled=True, get_fill_color=[47, 111, 235, 25],
            get_line_color=[47, 111, 235, 200], line_width_min_pixels=2, pickable=False,
        ))
    layers.append(pdk.Layer(
        "ScatterplotLayer", data=points, get_position="[lon, lat]", get_fill_color=color_column,
        get_radius=60, radius_min_pixels=4, radius_max_pixels=12, pickable=True,
        stroked=True, get_line_color=[255, 255, 255], line_width_min_pixels=1,
    ))
    deck = pdk.Deck(layers=layers, initial_view_state=view, map_provider=None, map_style=None,
                    tooltip={"text": tooltip})
    st.pydeck_chart(deck, height=height, key=key)


PALETTE_RGBA = [[47, 111, 235, 220], [232, 113, 10, 220], [18, 181, 203, 220]]


# ----------------------------------------------------------------------------- tables
def table(rows: Sequence[dict] | pd.DataFrame, *, key: str | None = None, select: bool = False,
          column_config: dict | None = None, height: int | str = "auto"):
    """A sortable table; with select=True a single-row selection, returning the selected row's
    position in `rows` (or None)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if not select:
        st.dataframe(frame, hide_index=True, column_config=column_config, key=key, height=height)
        return None
    state = st.dataframe(frame, hide_index=True, column_config=column_config, key=key,
                         on_select="rerun", selection_mode="single-row", height=height)
    chosen = state.selection.rows if state is not None else []
    return chosen[0] if chosen else None
