"""Audit (administrators): who did what, when, with which parameters, and how it ended."""
from datetime import timedelta

import streamlit as st

from beacon import console
from beacon.errors import BeaconError
from pages import _ui

_ui.routed(__file__)

st.title("Audit")
actor = _ui.actor()
try:
    choices = console.audit_choices(actor)
except BeaconError as error:
    _ui.error_box(error)
    st.stop()

today = console.default_range()[1]
left, middle, right = st.columns([2, 2, 3])
who = left.selectbox("Who", ["everyone"] + choices["who"], key="audit_who")
action = middle.selectbox("Action", ["every action"] + choices["action"], key="audit_action")
days = right.date_input("Dates (UTC)", value=(today - timedelta(days=7), today),
                        key="audit_days")
start, end = (days[0], days[-1]) if isinstance(days, (tuple, list)) and days else (None, None)

try:
    rows = console.audit_rows(actor, who=None if who == "everyone" else who,
                              action=None if action == "every action" else action,
                              start=start, end=end)
except BeaconError as error:
    _ui.error_box(error)
    st.stop()

st.caption(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}, newest first (at most 1,000).")
_ui.table(rows, key="audit_table", column_config={
    "at": st.column_config.DatetimeColumn("At (UTC)", format="YYYY-MM-DD HH:mm:ss"),
})
