"""Models: every version; one selected shows its loss curve, hyperparameters and metrics against
popularity; activate (rollback) behind a confirmation; compare two versions; clean up old ones
with a preview."""
import plotly.graph_objects as go
import streamlit as st

from beacon import console, versions
from pages import _ui

_ui.routed(__file__)

_METRIC_COLUMNS = {name: st.column_config.NumberColumn(name, format="%.4f") for name in (
    "beacon", "popularity", "difference", *console.OTHER_STRATEGIES)}
_COMPONENT_COLUMNS = {
    "chose": st.column_config.TextColumn("chose", width="large"),
    "validation": st.column_config.TextColumn(
        "validation NDCG", help="the model without the component -> with it, on the validation "
        "split the choice was made on (trend: users with / without history)"),
}


@st.cache_data(ttl=60, show_spinner=False)
def _rows(database: str, stamp: tuple) -> list[dict]:
    return console.version_rows()


@st.cache_data(ttl=60, show_spinner=False)
def _detail(database: str, version_id: int, status: str) -> console.VersionDetail:
    return console.version_detail(version_id)


@st.cache_data(ttl=300, show_spinner="Scoring a sample of users with both versions…")
def _compare(database: str, a: int, b: int) -> console.Comparison:
    return console.compare_versions(a, b)


def _changed(message: str) -> None:
    st.session_state["models_notice"] = message
    st.cache_data.clear()
    st.rerun()


database = console.database_key()
rows = _rows(database, console.versions_stamp())  # a version trained elsewhere shows at once


@st.fragment(run_every=5)
def _follow_other_operators(drawn: tuple) -> None:
    """Draw the page again when a global version is added, deleted or activated elsewhere
    (another operator, the API, cron): an open page would otherwise offer a rollback to a
    version that is already active, or show a deleted one. Fold-ins, which the refresh worker
    stores all the time, show at the next rerun instead."""
    if console.versions_stamp("global") != drawn:
        st.rerun(scope="app")


_follow_other_operators(console.versions_stamp("global"))

st.title("Models")
notice = st.session_state.pop("models_notice", None)
if notice:
    st.success(notice)
pending = st.session_state.get("confirm_activate")
if pending is not None and pending not in {row["id"] for row in rows} and \
        not console.version_exists(pending):
    st.session_state.pop("confirm_activate", None)
    st.warning(f"Version {pending} was deleted (a clean-up) while its activation waited for "
               "confirmation: nothing was activated.", icon=":material/warning:")
if not rows:
    st.info("No model has been trained yet. Train one on the Training page.", icon=":material/info:")
    st.stop()

_ui.table(rows, key="versions", column_config={
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "train_s": st.column_config.NumberColumn("train (s)", format="%.1f"),
    "ndcg": st.column_config.NumberColumn("NDCG@10", format="%.4f"),
    "ndcg_popularity": st.column_config.NumberColumn("popularity NDCG@10", format="%.4f"),
})
ids = [row["id"] for row in rows]
labels = {row["id"]: f"v{row['id']} · {row['scope']} · {row['created']:%Y-%m-%d %H:%M}"
          for row in rows}
active_ids = [row["id"] for row in rows if row["status"] == "active" and row["scope"] == "global"]
default = ids.index(active_ids[0]) if active_ids else 0
selected_id = st.selectbox("Version", ids, index=default, format_func=labels.get,
                           key="version_pick")

# ----------------------------------------------------------------------------- one version
status = next(row["status"] for row in rows if row["id"] == selected_id)
detail = _detail(database, selected_id, status)  # an activation elsewhere changes the key
st.subheader(f"Version {detail.id} · {detail.scope} · {detail.status}")
st.caption(f"Created {_ui.fmt_time(detail.created_at)} by {_ui.plain(detail.created_by or '—')} · "
           f"fingerprint {(detail.fingerprint or '—')[:16]} · "
           f"trained in {_ui.fmt_seconds(detail.training_seconds)}")
curve, numbers = st.columns(2)  # the metrics table has a column per strategy: give it room
with curve:
    if detail.loss_history:
        _ui.chart(_ui.loss_figure(detail.loss_history), key="version_loss")
        if detail.retry_note:
            st.info(_ui.sentence(detail.retry_note))
        if detail.convergence_note:
            st.warning(_ui.sentence(detail.convergence_note))
    else:
        st.caption("No loss history (a per-user fold-in has none).")
with numbers:
    if detail.metrics_table:
        st.markdown("**Offline metrics per strategy**")
        _ui.table(detail.metrics_table, key="version_metrics", column_config=_METRIC_COLUMNS)
        if detail.users is not None:
            st.caption(f"Each figure averages over {detail.users:,} users (those who registered "
                       "after the holdout cutoff).")
        st.markdown("**On events nobody had touched before the cutoff**")
        if detail.cold_table:
            _ui.table(detail.cold_table, key="version_cold_metrics", column_config=_METRIC_COLUMNS)
            st.caption(f"Each figure averages over {detail.cold_users:,} users.")
        else:
            st.caption(_ui.sentence(detail.cold_note) if detail.cold_note
                       else "Not evaluated.")
    else:
        st.caption("Not evaluated.")
    with st.expander("Hyperparameters"):
        if detail.settings_vs_saved:
            st.caption("Differs from the settings smart retrains use now (the saved ones, "
                       "Training page): the next smart retrain trains with theirs.")
            _ui.table(detail.settings_vs_saved, key="version_vs_saved")
        elif detail.scope == "global":
            st.caption("The settings smart retrains use now.")
        st.json(detail.hyperparameters, expanded=True)
    with st.expander("Counts"):
        st.json(detail.counts, expanded=True)
st.markdown("**What the components chose on validation**")
if detail.components:
    _ui.table(detail.components, key="version_components", column_config=_COMPONENT_COLUMNS)
else:
    st.caption(_ui.sentence(detail.components_note))

if detail.status == "active":
    if st.session_state.pop("confirm_activate", None) == detail.id:
        st.info(f"Version {detail.id} became active elsewhere (another operator, the API or the "
                "command line) while its activation waited for confirmation.",
                icon=":material/info:")
    st.caption(f"Version {detail.id} is the active {detail.scope} model.")
elif detail.status == "failed":
    st.warning(f"Version {detail.id} failed and cannot be activated.")
elif not _ui.may("activate_model"):
    st.caption("Activating a version (rollback) needs the admin role.")
elif st.session_state.get("confirm_activate") == detail.id:
    st.warning(f"Activate version {detail.id}? Every console and API process serves it from "
               "its next request on.", icon=":material/warning:")
    yes, no, _ = st.columns([1, 1, 4])
    if yes.button(f"Yes, activate v{detail.id}", type="primary", key="activate_yes"):
        st.session_state.pop("confirm_activate", None)
        try:
            versions.activate(detail.id, actor=_ui.actor())
            _changed(f"Version {detail.id} is now active.")
        except Exception as error:  # noqa: BLE001 - one line
            _ui.error_box(error)
    if no.button("Cancel", key="activate_no"):
        st.session_state.pop("confirm_activate", None)
        st.rerun()
elif st.button(f"Activate v{detail.id} (rollback)", icon=":material/history:", key="activate"):
    st.session_state["confirm_activate"] = detail.id
    st.rerun()

# ----------------------------------------------------------------------------- compare
st.divider()
st.subheader("Compare two versions")
global_ids = [row["id"] for row in rows if row["scope"] == "global" and row["status"] != "failed"]
if len(global_ids) < 2:
    st.caption("Two global versions are needed to compare.")
else:
    left, right, go_col = st.columns([1, 1, 1], vertical_alignment="bottom")
    a = left.selectbox("Version A", global_ids, index=min(1, len(global_ids) - 1), key="cmp_a",
                       format_func=lambda v: f"v{v}")
    b = right.selectbox("Version B", global_ids, index=0, key="cmp_b",
                        format_func=lambda v: f"v{v}")
    if go_col.button("Compare", icon=":material/compare_arrows:", key="compare") or (
            st.session_state.get("compared") == (a, b)):
        st.session_state["compared"] = (a, b)
        try:
            comparison = _compare(database, a, b)
        except Exception as error:  # noqa: BLE001 - one line
            _ui.error_box(error)
        else:
            c1, c2 = st.columns([2, 3])
            with c1:
                _ui.table(comparison.metrics, key="cmp_metrics", column_config={
                    col: st.column_config.NumberColumn(col, format="%.4f")
                    for col in (f"v{a}", f"v{b}", "difference")})
                st.metric("Mean top-10 overlap", _ui.fmt_pct(comparison.overlap_mean, 0),
                          help=f"share of the top 10 the two versions have in common, over "
                               f"{comparison.sample_size} sampled users (global models, "
                               "upcoming events, no filters)", border=True)
            with c2:
                fig = go.Figure()
                for version in (f"v{a}", f"v{b}"):
                    fig.add_trace(go.Violin(
                        x=[version] * sum(1 for r in comparison.scores if r["version"] == version),
                        y=[r["score"] for r in comparison.scores if r["version"] == version],
                        name=version, box_visible=True, meanline_visible=True, points=False))
                fig.update_layout(hovermode="closest")
                _ui.chart(_ui.style(fig, title="Scores of each version's top 10",
                                    y_title="score"), key="cmp_scores")
            hist = go.Figure(go.Histogram(x=[r["overlap"] for r in comparison.overlap],
                                          xbins=dict(start=-0.05, end=1.05, size=0.1)))
            hist.update_layout(hovermode="closest")
            # the whole 0-100 % axis even when every user has the same overlap (one bar)
            hist.update_xaxes(range=[-0.05, 1.05], tickformat=".0%", dtick=0.1)
            _ui.chart(_ui.style(hist, height=240, title="Top-10 overlap per sampled user",
                                x_title="share in common", y_title="users"), key="cmp_overlap")
            if comparison.settings:
                st.markdown("**Training settings that differ**")
                _ui.table(comparison.settings, key="cmp_settings")
            else:
                st.caption("Both versions were trained with the same settings.")
            if comparison.components:
                st.markdown("**What each version's components chose on validation**")
                _ui.table(comparison.components, key="cmp_components")

# ----------------------------------------------------------------------------- cleanup
st.divider()
st.subheader("Clean up old versions")
if not _ui.may("cleanup_models"):
    st.caption("Deleting old versions needs the admin role.")
    st.stop()
st.caption("Never deletes an active version, nor the newest global versions and the newest of "
           "each user you choose to keep. A personal version goes with the global version it "
           "was built on: it cannot serve without it.")
with st.form("cleanup_form", border=False):
    d, n, p = st.columns([1, 1, 1], vertical_alignment="bottom")
    keep_days = d.number_input("Keep versions younger than (days)", 0.0, 3650.0, 30.0, step=1.0)
    keep_newest = n.number_input("Always keep the newest", 0, 100, 3)
    previewed = p.form_submit_button("Preview", icon=":material/preview:")
if previewed:
    st.session_state["cleanup_settings"] = (keep_days, keep_newest)
settings = st.session_state.get("cleanup_settings")
if settings:
    doomed = console.cleanup_preview(*settings)
    if not doomed:
        st.success(f"Nothing to delete with keep {settings[0]:g} days / newest {settings[1]}.")
    else:
        st.warning(f"{len(doomed)} version(s) would be deleted:", icon=":material/delete:")
        _ui.table(doomed, key="cleanup_preview")
        if st.button(f"Delete these {len(doomed)} versions", type="primary", key="cleanup_go"):
            try:
                result = versions.cleanup(keep_days=settings[0], keep_newest=settings[1],
                                          actor=_ui.actor())
                st.session_state.pop("cleanup_settings", None)
                _changed(f"Deleted {len(result.deleted)} model version(s).")
            except Exception as error:  # noqa: BLE001 - one line
                _ui.error_box(error)
