"""Debug filter: why is an event shown to a user, or not? Every candidate, every stage."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from pages import _user_ui as ui

_ui.routed(__file__)

st.title("Debug filter")
st.caption("Every candidate event goes through the same stages as a recommendation: "
           "upcoming, not registered, not rejected, distance, dates, daily window, category.")

email = ui.user_input("debug_email")
if not email:
    st.info("Enter a user's email to run the filter for them.")
    st.stop()
now = ui.now_minute()
raw = ui.filter_controls("debug", email, now)

try:
    view = ui.debug_view(email, raw.parse(), now, ui.debug_show())
except Exception as error:  # noqa: BLE001 - one line
    ui.show_error(error)
    st.stop()

ui.debug_summary(view)
ui.debug_funnel(view)
ui.debug_table(view)
ui.debug_map(view)
ui.debug_timeline(view)
