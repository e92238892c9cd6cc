"""Recommendations: a user's ranked list with reasons, on a map, next to the strategies the
operator chooses to compare (popularity, content, the model, the previous model version)."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from pages import _user_ui as ui

_ui.routed(__file__)

st.title("Recommendations")

top_col, email_col = st.columns([1, 4])
with email_col:
    email = ui.user_input("recs_email")
top = top_col.number_input("How many", min_value=1, max_value=100, value=10, step=1, key="recs_top")
if not email:
    st.info("Enter a user's email, or open a user's recommendations from the Users page.")
    st.stop()
now = ui.now_minute()
raw = ui.filter_controls("recs", email, now)
strategy, compare = ui.strategy_controls("recs")

try:
    comparison = ui.compare_recommendations(email, raw.parse(), int(top), now, strategy, compare)
except Exception as error:  # noqa: BLE001 - one line
    ui.show_error(error)
    st.stop()

ui.recommendations_summary(comparison)
ui.recommendations_table(comparison)
ui.recommendations_map(comparison)
ui.side_by_side(comparison)
