"""API keys: who may call the HTTP API and with which scopes. Admins make (the key is shown
once), list and revoke keys; nobody ever sees a stored key again."""
import streamlit as st

from beacon import api_keys
from pages import _ui

_ui.routed(__file__)

st.title("API keys")
actor = _ui.actor()
if not _ui.may("create_api_key"):
    st.info("Only admins manage API keys.", icon=":material/lock:")
    st.stop()

with st.form("create_key", clear_on_submit=True):
    st.subheader("New key")
    name = st.text_input("Name", placeholder="platform-backend", max_chars=100,
                         help="who or what uses it")
    scopes = st.multiselect("Scopes", api_keys.SCOPES, default=["recommend"],
                            help="recommend: read recommendations and stats; ingest: report "
                                 "interactions and sync the catalogue; admin: training, models, "
                                 "debug filter, cleanup")
    created = None
    if st.form_submit_button("Create key", type="primary"):
        created = _ui.run_action("create", api_keys.create_key, name, scopes, actor=actor)
if created is not None:
    st.success(f"Key {created.info.name!r} created. Copy it now: it is shown only this once.",
               icon=":material/key:")
    st.code(created.secret, language=None)

keys = api_keys.list_keys()
st.subheader("Keys")
if not keys:
    st.caption("No API keys yet.")
else:
    _ui.table([{
        "name": k.name, "prefix": f"{api_keys.KEY_PREFIX}{k.prefix}_…", "scopes": ", ".join(k.scopes), "state": "active" if k.active else "revoked",
        "created": k.created_at, "created by": k.created_by, "last used": k.last_used_at,
        "revoked": k.revoked_at,
    } for k in keys], key="api_keys_table")
    active = [k.name for k in keys if k.active]
    if active:
        with st.form("revoke_key"):
            chosen = st.selectbox("Revoke", active, help="refused from the next request on")
            if st.form_submit_button("Revoke key"):
                revoked = _ui.run_action("revoke", api_keys.revoke_key, chosen, actor=actor)
                if revoked is not None:
                    st.rerun()
