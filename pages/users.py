"""Users: find a user, see what Beacon knows about them and which level serves them."""
from __future__ import annotations

import streamlit as st

from beacon import insights, training
from beacon.errors import BeaconError
from pages import _ui
from pages import _user_ui as ui

_ui.routed(__file__)

st.title("Users")

if "users_query" not in st.session_state:
    st.session_state["users_query"] = ui.selected_user()
query = st.text_input("Find a user by email or name", key="users_query",
                      placeholder="start of an email or a name, e.g. anna")
if not query.strip():
    st.info("Type the start of an email or a name to find a user.")
    st.stop()

matches = ui.find_users(query)
if not matches:
    st.warning(f"No user's email or name matches {_ui.plain(repr(query.strip()))}.")
    st.stop()
st.caption(f"{len(matches)} match{'es' if len(matches) != 1 else ''}"
           + (" (the first ones; type more to narrow)" if len(matches) >= insights.SEARCH_LIMIT else "")
           + ". Select a row to show that user.")
chosen = _ui.table(matches, key="users_matches", select=True, height=min(36 * (len(matches) + 1) + 2, 250))
email = matches[chosen if chosen is not None and chosen < len(matches) else 0]["email"]
ui.select_user(email)

try:
    profile = ui.user_profile(email)
except BeaconError as error:
    ui.show_error(error)
    st.stop()

ui.profile_header(profile)

left, right = st.columns(2)
if _ui.may("train") and left.button(
        "Refresh this user's personal model", icon=":material/refresh:",
        help="Fold this user's latest interactions into the active global model (per-user training)"):
    with st.spinner("Folding in this user's interactions…"):
        try:
            outcome = training.train(scope="user", user=email, trigger="button",
                                     actor=_ui.actor())
        except BeaconError as error:
            outcome = error
    st.session_state["users_refresh"] = (email, outcome)
    ui.forget_user_reads()
    st.rerun()  # the profile above then shows the level that serves them now
if right.button("Open their recommendations", icon=":material/recommend:", type="primary"):
    ui.select_user(email)
    st.switch_page("pages/recommendations.py")
ui.refresh_outcome(email, st.session_state.get("users_refresh"))

map_col, chart_col = st.columns([2, 3])
with map_col:
    st.subheader("Home and events")
    ui.profile_map(profile)
with chart_col:
    st.subheader("Interactions over time")
    ui.timeline_chart(profile.timeline)

reg_col, rej_col = st.columns(2)
with reg_col:
    st.subheader(f"Registrations ({len(profile.registrations)})")
    ui.decisions_table(profile.registrations, "users_registrations", "No registrations yet.")
with rej_col:
    st.subheader(f"Rejects ({len(profile.rejects)})")
    ui.decisions_table(profile.rejects, "users_rejects", "No rejected events.")
