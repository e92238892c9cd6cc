"""Overview: the platform at a glance, the active model, the last training runs, this week's
CTR and conversion against the week before."""
import streamlit as st

from beacon import console, refresh
from pages import _ui

_ui.routed(__file__)


@st.cache_data(ttl=15, show_spinner=False)
def _overview(database: str) -> console.Overview:
    return console.overview()


@st.cache_data(ttl=5, show_spinner=False)
def _refresh_backlog(database: str):
    return refresh.backlog()


data = _overview(console.database_key())
queue = _refresh_backlog(console.database_key())

st.title("Overview")

users, upcoming, recent = st.columns(3)
users.metric("Users", f"{data.users:,}", border=True)
upcoming.metric("Upcoming events", f"{data.upcoming_events:,}",
                help=f"{data.events:,} events in total", border=True)
recent.metric("Interactions, last 7 days", f"{data.interactions_7d:,}", border=True)

st.subheader("Active model")
active = data.active
if active is None:
    st.info("No model is active yet. Train one on the Training page.", icon=":material/info:")
else:
    version, trained, state, quality = st.columns(4)
    version.metric("Version", f"v{active.id}", border=True)
    trained.metric("Trained", active.age_text + " ago", help=_ui.fmt_time(active.created_at),
                   border=True)
    state.metric("Data fingerprint", active.fingerprint_state,
                 help="stale: the data or the saved training settings changed since this model "
                      "was trained, or it is older than its maximum age. Now "
                      + _ui.plain(active.smart_retrain) + ".", border=True)
    lift = (None if active.ndcg is None or active.ndcg_popularity is None
            else active.ndcg - active.ndcg_popularity)
    quality.metric(f"Offline NDCG@{active.k}", _ui.fmt_num(active.ndcg),
                   delta=None if lift is None else f"{lift:+.3f} vs popularity "
                                                   f"({_ui.fmt_num(active.ndcg_popularity)})",
                   border=True)

st.subheader("Near-real-time refresh")
pending, oldest, mean_lag, refreshed = st.columns(4)
pending.metric("Refresh backlog", f"{queue.pending:,} users",
               help=f"marked by an interaction and not refreshed yet; {queue.due:,} due now "
                    f"(the others wait for their interval), {queue.claimed:,} being refreshed",
               border=True)
oldest.metric("Oldest waiting mark", _ui.fmt_seconds(queue.oldest_pending_seconds), border=True)
mean_lag.metric("Refresh lag, last 5 min", _ui.fmt_seconds(queue.mean_lag_last_5m),
                help=f"mean time from a user's interaction to their refreshed list; "
                     f"max {_ui.fmt_seconds(queue.max_lag_last_5m)}", border=True)
refreshed.metric("Users refreshed, last 5 min", f"{queue.refreshed_last_5m:,}", border=True)

st.subheader("Last 7 days against the 7 before")
ctr, conversion = st.columns(2)
ctr.metric("Click-through rate", _ui.fmt_pct(data.ctr.current),
           delta=None if data.ctr.delta is None else f"{100 * data.ctr.delta:+.2f} pp",
           help="clicks / impressions", border=True)
conversion.metric("Conversion", _ui.fmt_pct(data.conversion.current),
                  delta=None if data.conversion.delta is None
                  else f"{100 * data.conversion.delta:+.2f} pp",
                  help="registrations / impressions", border=True)

st.subheader("Last training runs")
if data.runs:
    _ui.table(data.runs, key="overview_runs", column_config={
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
    })
else:
    st.caption("No training has run yet.")
