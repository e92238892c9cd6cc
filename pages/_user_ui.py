"""Widgets shared by the Users, Recommendations and Debug-filter pages: the user picker that
carries one selected user across pages, and the filter controls (point, distance, dates, daily
window, rejected events) that the Recommendations and Debug-filter pages share."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

import pandas as pd
import plotly.graph_objects as go
import pydeck as pdk
import streamlit as st

from beacon import console, insights
from beacon.filters import FilterParams
from beacon.recommend import STRATEGIES
from pages import _ui

#: the user selected on any of these pages (not a widget key: it survives page switches)
SELECTED_USER = "beacon_selected_user"


def select_user(email: str) -> None:
    """Remember `email` as the selected user for the other pages."""
    st.session_state[SELECTED_USER] = email


def selected_user() -> str:
    """The preselected user: the one chosen on another page, else ?user= in the address."""
    chosen = st.session_state.get(SELECTED_USER)
    if chosen:
        return str(chosen)
    return str(st.query_params.get("user", ""))


def user_input(key: str, label: str = "User (email)") -> str:
    """An email box preset with the selected user; what is typed becomes the selected user.
    A ?user= that arrives after the box was made (a deep link whose first run came through the
    router before its query did) still fills it, once, and an empty box takes the user the
    address names: a rerun the browser asked for before it had drawn the linked value can
    send back the box's former empty value (seen on CI), and an empty box selects nobody."""
    linked = str(st.query_params.get("user", ""))
    seen = f"{key}_linked_user"  # the ?user= this box has taken in (not a widget key)
    if key not in st.session_state:
        st.session_state[key] = selected_user()
        st.session_state[seen] = linked
    elif linked and (linked != st.session_state.get(seen) or not st.session_state[key]):
        st.session_state[key] = linked
        st.session_state[seen] = linked
    elif st.session_state[key]:
        # The same value again: a value set through the session state is sent to the browser
        # as one to draw. Otherwise a box the browser rebuilt during a rerun (the sign-in
        # cookie reporting back) kept showing "" while the page ran for the linked user (seen
        # on CI, twice in a row). Typing is never overwritten: what was typed is this value.
        st.session_state[key] = st.session_state[key]
    email = st.text_input(label, key=key, placeholder="someone@example.org").strip()
    if email:
        select_user(email)
        if st.query_params.get("user") != email:
            st.query_params["user"] = email
        st.session_state[seen] = email
    return email


@dataclass(frozen=True)
class FilterInput:
    """The raw values of the filter controls, exactly what FilterParams.parse takes."""
    lat: float | None
    lon: float | None
    max_km: float | None
    dates: list[date] | None
    start: time | None
    end: time | None
    reject: str
    categories: list[str] | None = None

    home: tuple[float | None, float | None] = (None, None)

    def parse(self) -> FilterParams:
        """Validated parameters; the point is left out while it is still the user's home, so
        that distances and reasons say 'home'. Raises BeaconError."""
        at_home = self.home[0] is not None and (self.lat, self.lon) == self.home
        lat, lon = (None, None) if at_home else (self.lat, self.lon)
        return FilterParams.parse(lat, lon, self.max_km, self.dates, self.start, self.end,
                                  self.reject, self.categories)


def filter_controls(key: str, email: str, now: datetime) -> FilterInput:
    """The debug filter's controls. The point defaults to the user's home; widgets are keyed by
    the user so that choosing another user starts again from their home."""
    home_lat, home_lon = insights.home_of(email)
    suffix = f"{key}_{email}"
    with st.container(border=True):
        c1, c2, c3 = st.columns([1, 1, 2])
        lat = c1.number_input("Latitude", value=home_lat, format="%.4f", step=0.01,
                              key=f"{suffix}_lat", placeholder="home latitude",
                              help="Defaults to the user's home. Range -90 to 90.")
        lon = c2.number_input("Longitude", value=home_lon, format="%.4f", step=0.01,
                              key=f"{suffix}_lon", placeholder="home longitude",
                              help="Defaults to the user's home. Range -180 to 180.")
        with c3:
            use_distance = st.toggle("Max distance", key=f"{key}_use_km")
            km = st.number_input("Max distance (km)", min_value=0.0, value=25.0, step=5.0,
                                 key=f"{key}_km", disabled=not use_distance)
        c4, c5 = st.columns([2, 2])
        with c4:
            use_dates = st.toggle("Calendar filter: only on selected dates", key=f"{key}_use_dates")
            picked = st.multiselect(
                "Dates (event local date)", insights.coming_days(now), key=f"{key}_dates",
                format_func=lambda d: d.strftime("%a %d %b %Y"), disabled=not use_dates,
                placeholder="choose one or more of the coming days",
            )
        with c5:
            use_window = st.toggle("Daily time window", key=f"{key}_use_window")
            w1, w2 = st.columns(2)
            start = w1.time_input("From", value=time(18, 0), key=f"{key}_start",
                                  disabled=not use_window, step=900)
            end = w2.time_input("To", value=time(23, 0), key=f"{key}_end",
                                disabled=not use_window, step=900)
            if use_window and start is not None and end is not None:
                if end < start:
                    st.caption(f":material/bedtime: Window across midnight: from {start:%H:%M} "
                               f"to {end:%H:%M} the next day (event local time)")
                elif end == start:
                    st.caption(":material/warning: From and To are the same time: the window "
                               "is empty. Pick an end after the start, or before it to cross "
                               "midnight.")
                else:
                    st.caption(f"Window {start:%H:%M}–{end:%H:%M} (event local time)")
        c6, c7 = st.columns([2, 2])
        reject = c6.text_input("Rejected events (event ids, comma-separated)",
                               key=f"{key}_reject", placeholder="e.g. ev-00012, ev-00345")
        with c7:
            use_categories = st.toggle("Only these categories", key=f"{key}_use_categories")
            categories = st.multiselect(
                "Categories", upcoming_categories(now), key=f"{key}_categories",
                disabled=not use_categories, placeholder="choose one or more categories",
            )
    return FilterInput(
        lat=lat,
        lon=lon,
        max_km=km if use_distance else None,
        dates=list(picked) if use_dates else None,
        start=start if use_window else None,
        end=end if use_window else None,
        reject=reject,
        categories=list(categories) if use_categories else None,
        home=(home_lat, home_lon),
    )


# ----------------------------------------------------------------------------- cached reads
#: how long a page may show a read before asking again (another process's change shows up
#: within this; this process's own changes clear the caches at once)
CACHE_TTL_S = 20


def now_minute() -> datetime:
    """Now, to the minute: what the filters are evaluated at, so a rerun within the same
    minute is served from the cache."""
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _upcoming_categories(now: datetime, database: str) -> list[str]:
    return insights.upcoming_categories(now)


def upcoming_categories(now: datetime) -> list[str]:
    return _upcoming_categories(now, console.database_key())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _find_users(query: str, database: str) -> list[dict]:
    return insights.find_users(query)


def find_users(query: str) -> list[dict]:
    return _find_users(query.strip(), console.database_key())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _user_profile(email: str, now: datetime, database: str) -> insights.UserProfile:
    return insights.user_profile(email, now=now)


def user_profile(email: str) -> insights.UserProfile:
    return _user_profile(email, now_minute(), console.database_key())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _debug_view(email: str, params: FilterParams, now: datetime, show: str,
                database: str) -> insights.DebugView:
    return insights.debug_view(email, params, now=now, show=show)


def debug_view(email: str, params: FilterParams, now: datetime, show: str) -> insights.DebugView:
    return _debug_view(email, params, now, show, console.database_key())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _compare(email: str, params: FilterParams, top: int, now: datetime, strategy: str,
             compare: tuple[str, ...], database: str) -> insights.Comparison:
    return insights.compare_recommendations(email, params, top=top, now=now, strategy=strategy,
                                            compare=compare)


def compare_recommendations(email: str, params: FilterParams, top: int, now: datetime,
                            strategy: str = "beacon",
                            compare: tuple[str, ...] = insights.DEFAULT_COMPARE
                            ) -> insights.Comparison:
    return _compare(email, params, top, now, strategy, tuple(compare), console.database_key())


def forget_user_reads() -> None:
    """After a change made here (a personal model refreshed): drop what these pages cached."""
    for cached in (_user_profile, _debug_view, _compare):
        cached.clear()


def show_error(error: BaseException | str) -> None:
    # it may echo the typed email
    st.error(_ui.plain(_ui.failure_text(error) if isinstance(error, BaseException) else error),
             icon=":material/error:")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------- Users page
LEVEL_BADGE = {
    "personal": ":green-badge[personal model]",
    "global": ":blue-badge[global model]",
    "features": ":orange-badge[features only]",
    "popularity": ":red-badge[popularity]",
    "content": ":violet-badge[content-based]",
}
POINT_COLORS = {
    "home": [47, 111, 235, 235], "registered": [24, 128, 56, 210], "rejected": [217, 48, 37, 190],
    "kept": [24, 128, 56, 210], "dropped": [217, 48, 37, 150], "recommended": [24, 128, 56, 220],
}
DAY_MS = 86_400_000
TYPE_COLORS = {
    "impression": "#BDC1C6", "view": "#9AA0A6", "click": "#2F6FEB", "favorite": "#F9AB00",
    "share": "#12B5CB", "register": "#188038", "attend": "#0B5D1E", "unregister": "#E8710A",
    "reject": "#D93025",
}


def profile_header(profile: insights.UserProfile) -> None:
    st.header(_ui.plain(profile.name or profile.email), anchor=False)
    # the home point goes in the caption: as a metric its numbers were cut to "40.73, -74…"
    home = (f"home {profile.latitude:.4f}, {profile.longitude:.4f}" if profile.has_home
            else "no home location")
    st.text(f"{profile.email} · {home}")
    st.text("Interest tags: " + (", ".join(profile.interest_tags) or "none"))
    cols = st.columns(4)
    cols[0].metric("City", _ui.plain(profile.city) if profile.city else "—")  # a metric is Markdown
    cols[1].metric("Member since", f"{profile.created_at:%Y-%m-%d}" if profile.created_at else "—")
    cols[2].metric("Interactions", f"{sum(profile.totals.values()):,}")
    serving = profile.serving
    if serving is None:
        cols[3].metric("Served by", "—")
        if profile.serving_error:
            st.warning("Could not tell which level serves this user: "
                       + _ui.plain(profile.serving_error))
        return
    version = f"model v{serving.model_version}, " if serving.model_version is not None else ""
    cols[3].metric("Served by", serving.level, help=serving.explanation)
    st.markdown(f"**Served by:** {LEVEL_BADGE.get(serving.level, serving.level)} — "
                f"{serving.explanation} ({version}{'age ' if serving.age else ''}{serving.age_text}).")


def refresh_outcome(email: str, stored) -> None:
    """The result of this user's last personal-model refresh, when there is one."""
    if not stored or stored[0] != email:
        return
    if isinstance(stored[1], Exception):
        show_error(stored[1])
    else:
        training_outcome(stored[1])


def training_outcome(outcome) -> None:
    """Show what a per-user training returned (status, reason, version)."""
    status = str(getattr(outcome, "status", "") or (outcome or {}).get("status", ""))
    reason = getattr(outcome, "reason", None) or ""
    version = getattr(outcome, "model_version", None)
    seconds = getattr(outcome, "seconds", None) or getattr(outcome, "training_seconds", None)
    text = f"Personal model: **{status}**" + (f" — {_ui.plain(reason)}" if reason else "")
    if version is not None:
        text += f" (model version {version})"
    if seconds is not None and " ms)" not in reason:  # a fold-in's reason already says how long
        text += f" in {seconds * 1000:.0f} ms"
    if status in ("trained", "succeeded"):
        st.success(text, icon=":material/check_circle:")
    elif status in ("failed",):
        st.error(text, icon=":material/error:")
    else:
        st.info(text)


def profile_map(profile: insights.UserProfile) -> None:
    if not profile.points:
        st.info("No home location and no located events to show.")
        return
    frame = pd.DataFrame(profile.points)
    frame["color"] = frame["kind"].map(POINT_COLORS)
    home = next((p for p in profile.points if p["kind"] == "home"), None)
    focused_map(frame, focus=home, key="users_map", height=340)
    st.caption("Blue: home · green: registered · red: rejected (no base map: works offline)")


def timeline_chart(rows: list[dict]) -> None:
    if not rows:
        st.info("No interactions yet.")
        return
    _ui.chart(timeline_figure(rows), key="users_timeline")


def timeline_figure(rows: list[dict]) -> go.Figure:
    """Interactions per day and type, stacked ({day, type, count} rows)."""
    frame = pd.DataFrame(rows)
    order = {kind: i for i, kind in enumerate(TYPE_COLORS)}
    frame = frame.sort_values("type", key=lambda t: t.map(order).fillna(len(order)), kind="stable")
    fig = go.Figure()
    for kind, part in frame.groupby("type", sort=False):
        fig.add_trace(go.Bar(x=part["day"], y=part["count"], name=kind,
                             marker_color=TYPE_COLORS.get(kind), width=0.8 * DAY_MS,
                             xperiod=DAY_MS, xperiodalignment="middle"))
    fig.update_layout(barmode="stack", bargap=0.15)
    fig.update_xaxes(type="date", tickformat="%d %b")
    days = pd.to_datetime(frame["day"])
    span = (days.max() - days.min()).days
    if span < 14:  # a few days: one tick per day, and at least a week shown (one day alone
        # was drawn as a full-width bar under seven ticks of the same date)
        pad = pd.Timedelta(days=max(0.0, (7 - span) / 2) + 0.5)
        fig.update_xaxes(dtick=DAY_MS, range=[days.min() - pad, days.max() + pad])
    return _ui.style(fig, height=320, y_title="interactions per day")


def decisions_table(rows: list[dict], key: str, empty: str) -> None:
    if not rows:
        st.caption(empty)
        return
    _ui.table(rows, key=key, height=min(36 * (len(rows) + 1) + 2, 320))


# ----------------------------------------------------------------------------- Debug filter
STATUS_COLORS = {
    "kept": "#188038", "dropped by the window": "#D93025", "dropped by another stage": "#9AA0A6",
}
SHOW_KEY = "debug_show"


def debug_show() -> str:
    """What the 'show only' selector held at the end of the last run (the service needs it
    before the selector is drawn again)."""
    return str(st.session_state.get(SHOW_KEY, "all"))


def source_text(source: str, model_version: int | None) -> str:
    version = f" v{model_version}" if model_version is not None else ""
    return f"{LEVEL_BADGE.get(source, source)}{version}"


def debug_summary(view: insights.DebugView) -> None:
    cols = st.columns(4)
    cols[0].metric("Candidates", f"{view.total:,}")
    cols[1].metric("Kept", f"{view.kept:,}")
    cols[2].metric("Dropped", f"{view.total - view.kept:,}")
    cols[3].metric("Scored by", view.source,
                   help=f"model version {view.model_version}" if view.model_version else None)
    if view.window_label:
        if view.crosses_midnight:
            start, end = view.params.window_start, view.params.window_end
            st.info(f"Daily window **{view.window_label}**, in each event's local time. An event "
                    f"passes when it starts between {start:%H:%M} and {end:%H:%M} the next day "
                    f"and, if it has an end time, ends by {end:%H:%M}.",
                    icon=":material/bedtime:")
        else:
            st.caption(f"Daily window {view.window_label} (event local time).")
    unknown_rejects_warning(view.unknown_rejects)


def unknown_rejects_warning(ids) -> None:
    """The filter ignores a rejected id that is not among the candidates; 'matches no event'
    was wrong for an event that exists but is already over."""
    if ids:
        st.warning("Ignored rejected ids that are not among the upcoming events (no such event, "
                   "or it is already over): " + _ui.plain(", ".join(ids)), icon=":material/info:")


def debug_funnel(view: insights.DebugView) -> None:
    st.subheader("Candidates left after each stage")
    chart_col, table_col = st.columns([3, 2])
    with chart_col:
        _ui.chart(_ui.funnel_figure([(s.label, s.remaining) for s in view.funnel]), key="debug_funnel")
    with table_col:
        frame = pd.DataFrame({
            "stage": [s.name for s in view.funnel],
            "on": [s.enabled for s in view.funnel],
            "remaining": [s.remaining for s in view.funnel],
            "dropped here": [s.dropped for s in view.funnel],
        })
        st.dataframe(frame, hide_index=True, key="debug_funnel_table")


def debug_table(view: insights.DebugView) -> None:
    """The candidate table with a 'show only' selector (the service already picked the rows)."""
    st.subheader("Every candidate")
    dropped = {s.name: s.dropped for s in view.funnel[1:]}
    labels = {"all": f"all candidates ({view.total})", "kept": f"kept ({view.kept})"}
    st.selectbox("Show only", ["all", "kept", *view.dropped_by_choices()], key=SHOW_KEY,
                 format_func=lambda c: labels.get(c, f"dropped by: {c} ({dropped.get(c, 0)})"))
    if not view.rows:
        st.info("No candidate events here." if view.total else
                "No candidate events at all (no upcoming events in the database).")
        return
    frame = pd.DataFrame(view.rows)
    config = {name: st.column_config.CheckboxColumn(name, help=f"passes the stage '{name}'")
              for name in ["kept", *view.stage_columns]}
    config["reason"] = st.column_config.TextColumn("reason", width="large")
    st.dataframe(frame, hide_index=True, column_config=config, key="debug_rows",
                 height=min(36 * (len(frame) + 1) + 2, 420))
    if view.matched > len(frame):
        st.caption(f"The first {len(frame):,} of {view.matched:,} rows: choose a stage above to narrow.")


def debug_map(view: insights.DebugView) -> None:
    st.subheader("Where they are")
    points = pd.DataFrame(view.points, columns=["lat", "lon", "kind", "label"])
    if view.origin is not None:
        origin = pd.DataFrame([{**view.origin, "kind": "home",
                                "label": f"{view.origin['label']} of {view.email}"}])
        points = pd.concat([points, origin], ignore_index=True)
    points["color"] = points["kind"].map(POINT_COLORS)
    focused_map(points, circles=view.circles, focus=view.origin, key="debug_map", height=420)
    st.caption("Green: kept · red: dropped · blue: the point distances are measured from"
               + (f" · circle: {view.circles[0]['label']}" if view.circles else "")
               + " (no base map: works offline)")


def debug_timeline(view: insights.DebugView) -> None:
    st.subheader("Event times against the daily window")
    frame = pd.DataFrame(view.timeline, columns=["event_id", "label", "start_h", "end_h",
                                                 "status", "local", "sort"])
    frame["label"] = frame["label"].map(_ui.chart_text)  # event titles: drawn by Plotly
    others = frame["status"] == "dropped by another stage"
    hidden = 0
    if view.window_label and others.any():
        # the window decides only about what reached it: the rest is grey noise by default
        if not st.toggle(f"Also draw the {int(others.sum())} events dropped before the window",
                         key="debug_timeline_all"):
            hidden, frame = int(others.sum()), frame[~others]
    if frame.empty:
        st.info("No events to draw." if not view.window_label else
                "No event reached the window stage: earlier stages dropped them all (see the "
                "funnel above).")
        return
    fig = go.Figure()
    for start, end in view.window_spans:
        fig.add_vrect(x0=start, x1=end, fillcolor="#2F6FEB", opacity=0.12, line_width=0,
                      layer="below")
    timed = frame[frame["end_h"].notna()]
    for status, part in timed.groupby("status", sort=False):
        fig.add_trace(go.Bar(
            y=part["label"], x=part["end_h"] - part["start_h"], base=part["start_h"],
            orientation="h", name=status, marker_color=STATUS_COLORS.get(status),
            customdata=part["local"], hovertemplate="%{y}<br>%{customdata}<extra></extra>",
        ))
    open_ended = frame[frame["end_h"].isna()]
    for status, part in open_ended.groupby("status", sort=False):
        fig.add_trace(go.Scatter(
            y=part["label"], x=part["start_h"], mode="markers", name=f"{status} (no end time)",
            marker=dict(symbol="diamond", size=10, color=STATUS_COLORS.get(status)),
            customdata=part["local"], hovertemplate="%{y}<br>%{customdata}<extra></extra>",
        ))
    ticks = list(range(0, 49, 3))
    fig.update_xaxes(range=[0, 48 if (frame["end_h"].fillna(0) > 24).any() or view.crosses_midnight else 24],
                     tickvals=ticks, ticktext=[f"{t % 24:02d}:00" + (" +1d" if t >= 24 else "") for t in ticks],
                     title_text="event local time (hours from midnight of its start day)")
    fig.update_yaxes(categoryorder="array", categoryarray=list(frame["label"])[::-1])
    fig = _ui.style(fig, height=max(280, 22 * len(frame) + 150))
    # the axis on top, under the legend: a long list keeps its hours in sight
    fig.update_xaxes(side="top", title_standoff=6)
    fig.update_layout(barmode="overlay", hovermode="closest", margin=dict(t=110),
                      legend=dict(y=0.995, yanchor="top", yref="container"))
    _ui.chart(fig, key="debug_timeline")
    note = "Shaded: the daily window" + (f" {view.window_label}" if view.window_label else " (off)")
    if hidden:
        note += f" · {len(frame)} events that reached the window ({hidden} dropped before it hidden)"
    elif view.matched > len(frame):
        note += f" · {len(frame)} of {view.matched:,} events"
    st.caption(note)


# ----------------------------------------------------------------------------- Recommendations
def strategy_controls(key: str) -> tuple[str, tuple[str, ...]]:
    """The main list's strategy and the lists to put beside it."""
    left, right = st.columns([1, 3])
    strategy = left.selectbox("Strategy", STRATEGIES, key=f"{key}_strategy",
                              help="beacon: the model with its fallbacks · popularity: "
                                   "registrations this week, near first · content: TF-IDF of "
                                   "the events against the user's history and interests")
    compare = right.multiselect("Compare side by side with", insights.COMPARE_OPTIONS,
                                default=list(insights.DEFAULT_COMPARE), key=f"{key}_compare",
                                placeholder="choose strategies to compare")
    return strategy, tuple(name for name in compare if name != strategy)


def recommendations_summary(c: insights.Comparison) -> None:
    passed = c.stages[-1].remaining if c.stages else 0
    st.markdown(f"**{len(c.rows)}** recommendations for **{_ui.plain(c.email)}** out of **{passed:,}** "
                f"candidates that pass the filters · strategy **{c.strategy}** · served by "
                f"{source_text(c.source, c.model_version)}")
    unknown_rejects_warning(c.unknown_rejects)
    if not c.rows:
        st.warning("No event passes the filters for this user: see the Debug filter page for why.")


def recommendations_table(c: insights.Comparison) -> None:
    if not c.rows:
        return
    _ui.table(c.rows, key="recs_rows", column_config={
        "rank": st.column_config.NumberColumn("rank", width="small"),
        "score": st.column_config.NumberColumn("score", format="%.4f"),
        "reason": st.column_config.TextColumn("reason", width="large"),
        "distance km": st.column_config.NumberColumn("distance", format="%.1f km"),
    })


def recommendations_map(c: insights.Comparison) -> None:
    st.subheader("On the map")
    points = pd.DataFrame(c.points, columns=["lat", "lon", "kind", "label"])
    points["color"] = points["kind"].map(POINT_COLORS)
    focus = next((p for p in c.points if p["kind"] == "home"), None)
    focused_map(points, circles=c.circles, focus=focus, key="recs_map", height=420)
    st.caption("Blue: the user's point · green: recommended events"
               + (f" · circle: max distance {c.circles[0]['label']}" if c.circles else "")
               + " (no base map: works offline)")


def _ranked_list(ranked: insights.RankedList, top: int, main: str, key: str) -> None:
    """`top`: the length of the main list (the overlap is out of that)."""
    if not ranked.available:
        st.info(ranked.note)
        return
    label = "the model's list" if main == "beacon" else f"the {main} list"
    st.metric(f"Overlap with {label}", f"{ranked.overlap} of {top}",
              help="events that are in both lists")
    st.caption(ranked.note)
    if ranked.rows:
        _ui.table(ranked.rows, key=key, column_config={
            "in main list": st.column_config.CheckboxColumn("in main list"),
        })
    else:
        st.caption("Nothing passes the filters.")


def _list_title(ranked: insights.RankedList) -> str:
    if ranked.name == insights.PREVIOUS_VERSION:
        return "Previous model version" + (f" (v{ranked.version})" if ranked.available else "")
    return f"Strategy: {ranked.name}"


def side_by_side(c: insights.Comparison) -> None:
    st.subheader("Side by side")
    if not c.others:
        st.caption("Choose strategies to compare above.")
        return
    for column, ranked in zip(st.columns(len(c.others)), c.others):
        with column:
            st.markdown(f"**{_list_title(ranked)}**")
            _ranked_list(ranked, len(c.rows), c.strategy,
                         "recs_" + ranked.name.replace(" ", "_"))


# ----------------------------------------------------------------------------- maps
def _zoom(spread_km: float) -> float:
    return max(1.0, min(14.0, math.log2(40000.0 / max(spread_km, 1.0)) - 0.6))


def focused_map(points, *, circles=(), focus: dict | None = None, key: str, height: int = 400) -> None:
    """Points (lat, lon, label, color) and circles on no base map (works offline), centred on
    `focus` (the user's point) and zoomed to the distance circle, or else to the points near
    the focus, so that events on other continents do not shrink the interesting part to a dot."""


    points = points.dropna(subset=["lat", "lon"]).copy()
    if points.empty and focus is None:
        st.info("Nothing with a location to show on the map.")
        return
    if focus is not None:
        lat0, lon0 = float(focus["lat"]), float(focus["lon"])
        if circles:
            spread = 5.0 * max(float(c["radius_km"]) for c in circles)
        else:
            dlat = (points["lat"] - lat0).abs() * 111.0
            dlon = (points["lon"] - lon0).abs() * 111.0 * max(0.2, math.cos(math.radians(lat0)))
            near = pd.concat([dlat, dlon], axis=1).max(axis=1)
            near = near[near < 300.0]
            spread = 4.0 * float(near.max()) if len(near) else 50.0
    else:
        lat0, lon0 = float(points["lat"].mean()), float(points["lon"].mean())
        spread = max(float(points["lat"].max() - points["lat"].min()),
                     float(points["lon"].max() - points["lon"].min())) * 111.0
    layers = []
    if circles:
        frame = pd.DataFrame(list(circles))
        frame["radius_m"] = frame["radius_km"] * 1000.0
        layers.append(pdk.Layer(
            "ScatterplotLayer", data=frame, get_position="[lon, lat]", get_radius="radius_m",
            stroked=True, filled=True, get_fill_color=[47, 111, 235, 22],
            get_line_color=[47, 111, 235, 220], line_width_min_pixels=2, pickable=False,
        ))
    layers.append(pdk.Layer(
        "ScatterplotLayer", data=points, get_position="[lon, lat]", get_fill_color="color",
        get_radius=150, radius_min_pixels=5, radius_max_pixels=14, pickable=True, stroked=True,
        get_line_color=[255, 255, 255], line_width_min_pixels=1,
    ))
    deck = pdk.Deck(layers=layers, map_provider=None, map_style=None,
                    initial_view_state=pdk.ViewState(latitude=lat0, longitude=lon0, zoom=_zoom(spread)),
                    tooltip={"text": "{label}"})
    st.pydeck_chart(deck, height=height, key=key)
