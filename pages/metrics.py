"""Metrics: online CTR and conversion over a date range, per day (model activations marked), per
model version and per strategy with Wilson 95% intervals, the funnel, by position, by category."""
from datetime import date

import plotly.graph_objects as go
import streamlit as st

from beacon import console
from beacon import metrics as online
from pages import _ui

_ui.routed(__file__)

RATES = {"CTR": "ctr", "Conversion": "conversion", "Registrations per click": "click_conversion"}


@st.cache_data(ttl=30, show_spinner="Counting…")
def _metrics(database: str, first: date, last: date) -> online.OnlineMetrics:
    start, end = console.range_bounds(first, last)
    return online.online_metrics(start=start, end=end)


st.title("Metrics")
default_first, default_last = console.default_range(days=30)
picked, rate_col = st.columns([2, 3], vertical_alignment="bottom")
span = picked.date_input("Date range (UTC days, both included)", (default_first, default_last),
                         min_value=date(2000, 1, 1), max_value=default_last,
                         key="metrics_range")
rate_label = rate_col.segmented_control("Rate for the breakdowns", list(RATES), default="CTR",
                                        key="metrics_rate") or "CTR"
rate = RATES[rate_label]
if not isinstance(span, (tuple, list)) or len(span) != 2:
    st.info("Pick the last day of the range too.")
    st.stop()
try:
    m = _metrics(console.database_key(), span[0], span[1])
except Exception as error:  # noqa: BLE001 - one line
    _ui.error_box(error)
    st.stop()

totals = m.totals
c1, c2, c3, c4 = st.columns(4)
c1.metric("Impressions", f"{totals['impressions']:,}", border=True)
c2.metric("Clicks", f"{totals['clicks']:,}", border=True)
c3.metric("CTR", _ui.fmt_pct(totals.get("ctr")), border=True,
          help=f"95% interval {_ui.fmt_pct(totals.get('ctr_low'))} – {_ui.fmt_pct(totals.get('ctr_high'))}")
c4.metric("Conversion", _ui.fmt_pct(totals.get("conversion")), border=True,
          help="registrations / impressions; 95% interval "
               f"{_ui.fmt_pct(totals.get('conversion_low'))} – "
               f"{_ui.fmt_pct(totals.get('conversion_high'))}")
if totals["impressions"] == 0:
    # every chart below is a rate over impressions: empty axes would only puzzle
    st.info(f"No impressions in this range ({span[0]:%Y-%m-%d} to {span[1]:%Y-%m-%d}, UTC days): "
            "there is no CTR or conversion to chart. Pick a range with recommendation traffic.",
            icon=":material/info:")
    st.stop()

# ----------------------------------------------------------------------------- per day
day = m.by_day
fig = go.Figure()
fig.add_trace(go.Scatter(x=day["day"], y=day["ctr"], name="CTR", mode="lines+markers"))
fig.add_trace(go.Scatter(x=day["day"], y=day["conversion"], name="conversion",
                         mode="lines+markers"))
fig.update_yaxes(tickformat=".1%")
_ui.mark_times(fig, [(a["activated_at"], f"v{a['model_version']} active") for a in m.activations])
_ui.chart(_ui.style(fig, height=340, title="CTR and conversion per day (dashed: a model version "
                                           "became active)"), key="per_day")

# ----------------------------------------------------------------------------- breakdowns
low, high = f"{rate}_low", f"{rate}_high"
left, right = st.columns(2)
with left:
    _ui.chart(_ui.interval_figure(m.by_model_version.to_dict("records"), "label", rate, low, high,
                                  title=f"{rate_label} per model version (95% Wilson)"),
              key="by_version")
with right:
    _ui.chart(_ui.interval_figure(m.by_strategy.to_dict("records"), "strategy", rate, low, high,
                                  title=f"{rate_label} per strategy (95% Wilson)"),
              key="by_strategy")

left, right = st.columns(2)
with left:
    stages = [(row["stage"], int(row["count"])) for row in m.funnel.to_dict("records")]
    _ui.chart(_ui.funnel_figure(stages, title="Funnel: impression → click → registration"),
              key="funnel")
with right:
    _ui.chart(_ui.interval_figure(m.by_position.to_dict("records"), "position", rate, low, high,
                                  title=f"{rate_label} by position in the list"),
              key="by_position")

_ui.chart(_ui.interval_figure(m.by_category.to_dict("records"), "category", rate, low, high,
                              title=f"{rate_label} by event category"), key="by_category")

with st.expander("Numbers"):
    tabs = st.tabs(["per day", "per model version", "per strategy", "by position", "by category"])
    for tab, frame in zip(tabs, (m.by_day, m.by_model_version, m.by_strategy, m.by_position,
                                 m.by_category)):
        with tab:
            _ui.table(frame)
st.caption(f"Clicks count within {totals['click_window_hours']:g} h and registrations within "
           f"{totals['registration_window_hours']:g} h of an impression for the per-version, "
           f"per-strategy and per-position figures; {totals['unattributed_clicks']:,} clicks and "
           f"{totals['unattributed_registrations']:,} registrations had no impression before them."
           + (" Versions marked 'not stored' are named by impressions but are not model versions "
              "of this database (imported impressions)."
              if (m.by_model_version["label"].str.endswith("not stored")).any() else "")
           + (" 'demo history N' rows are the demo data's made-up past versions, not models "
              "trained here."
              if (m.by_model_version["label"].str.startswith("demo history")).any() else ""))
