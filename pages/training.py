"""Training: smart / forced / per-user retrain, the hyperparameter form, the running training's
live progress (polled from the training runs table) and the history of runs.

Every button hands the work to the engine's background executor and returns at once; the
progress panel reads the run row, so it survives navigation and every operator sees the same.
"""
import streamlit as st

from beacon import console, training, training_settings
from pages import _ui

_ui.routed(__file__)

@st.cache_data(ttl=5, show_spinner=False)
def _state(database: str) -> console.TrainingPageState:
    return console.training_page_state()


NOTICE = "training_notice"  # (kind, message, run id this page started or None)


def _start(starter=console.start_retrain, **request) -> None:
    """Hand a retrain to the background executor; say what happened (started, busy, bad input)
    at the top of the page, and keep the run it started in view until its outcome is known."""
    try:
        result = starter(actor=_ui.actor(), **request)
    except Exception as error:  # noqa: BLE001 - a failed write says so on the page
        st.session_state[NOTICE] = ("error", _ui.failure_text(error), None)
    else:
        st.session_state[NOTICE] = ("warning" if result.busy else "success", result.message,
                                    None if result.busy else result.run_id)
    _state.clear()
    st.rerun()


def _show_notice() -> int | None:
    """The last action's message; once its run is final, that run's outcome instead (a smart
    retrain that skips is over before the page reruns). Returns the run still to watch."""
    notice = st.session_state.get(NOTICE)
    if not notice:
        return None
    kind, message, run_id = notice
    outcome = console.run_outcome(run_id) if run_id is not None else None
    if outcome is not None and outcome.final:
        kind, message = outcome.kind, outcome.text
    if kind == "error":
        _ui.error_box(message)
    else:  # run reasons name users and operators: shown inert
        {"warning": st.warning, "info": st.info}.get(kind, st.success)(_ui.plain(message))
    return run_id if outcome is not None and not outcome.final else None


database = console.database_key()
state = _state(database)

st.title("Training")

watched = _show_notice()
if state.saved.problem:  # every smart retrain fails until someone fixes them
    _ui.error_box(state.saved.problem)


def _controls() -> None:
    """Smart, forced and per-user retrains, and the hyperparameter form (operators, admins)."""
    smart, force, user = st.columns([1, 1, 3], vertical_alignment="bottom")
    if smart.button("Smart retrain", type="primary", icon=":material/autorenew:",
                    help="Trains only when the data or settings changed or the model is too old"):
        _start()
    if force.button("Force retrain", icon=":material/bolt:", help="Trains regardless"):
        _start(force=True)
    with user.form("user_retrain", border=False):
        email_col, go_col = st.columns([2, 1], vertical_alignment="bottom")
        email = email_col.text_input("Retrain one user (fold-in)", placeholder="user@example.com")
        if go_col.form_submit_button("Retrain user", icon=":material/person:"):
            _start(console.start_user_retrain, email=email)
    with st.expander("Training settings", icon=":material/tune:"):
        _saved_settings(state.saved)
        _hyperparameter_form(state.defaults)


def _saved_settings(saved: console.SavedSettingsView) -> None:
    """What every retrain without settings of its own trains with, and (admins) the way back."""
    if not saved.rows:
        st.caption("Nothing is saved: smart retrains (the button above, the API, cron) train "
                   "with the built-in defaults, shown in the form below.")
        return
    st.caption(f"Saved by {_ui.plain(saved.updated_by)} on "
               f"{saved.updated_at:%Y-%m-%d %H:%M} UTC: smart retrains (the button above, the "
               "API, cron) train with these, and the built-in defaults for the rest.")
    _ui.table(saved.rows, key="saved_settings")
    if _ui.may("reset_training_settings") and st.button(
            "Back to the built-in defaults", icon=":material/restart_alt:",
            help="Clears the saved settings: the next smart retrain trains with the defaults"):
        _change_settings(training_settings.reset_training_settings,
                         "The saved settings are cleared: smart retrains train with the "
                         "built-in defaults.")


def _change_settings(change, done: str, **request) -> None:
    try:
        change(actor=_ui.actor(), **request)
    except Exception as error:  # noqa: BLE001 - a refusal says so on the page
        st.session_state[NOTICE] = ("error", _ui.failure_text(error), None)
    else:
        st.session_state[NOTICE] = ("success", done, None)
    _state.clear()
    st.rerun()


def _hyperparameter_form(defaults: dict) -> None:
    saves = _ui.may("save_training_settings")
    st.caption("“Train with these settings” trains once with them (a forced retrain); the "
               "saved settings stay as they are, and the next smart retrain trains with those."
               + (" “Save for every retrain” makes them the settings smart retrains use: the "
                  "active model then reads as stale, and the next smart retrain trains with "
                  "them." if saves else ""))
    with st.form("hyperparameters"):
        a, b, c = st.columns(3)
        # No min/max on the inputs: a value out of range is refused by the browser without a
        # word; ModelConfig's validation names the setting and what it expects instead.
        values = {
            "dim": a.number_input("Embedding dimension", value=defaults["dim"], step=1),
            "epochs": b.number_input("Epochs (maximum)", value=defaults["epochs"], step=1),
            "patience": c.number_input("Early-stopping patience", value=defaults["patience"],
                                       step=1),
            # %g: a rate of 5e-05 shows as itself, not rounded to 0.0001 or 0.0000
            "learning_rate": a.number_input("Learning rate", value=defaults["learning_rate"],
                                            format="%g", step=0.0005),
            "batch_size": b.number_input("Batch size", value=defaults["batch_size"], step=1),
            "negatives": c.number_input("Negatives per positive", value=defaults["negatives"],
                                        step=1),
            "l2": a.number_input("L2", value=float(defaults["l2"]), format="%g", step=1e-6),
            "id_dropout": b.number_input("Id dropout", value=defaults["id_dropout"]),
            "validation_fraction": c.number_input("Validation fraction",
                                                  value=defaults["validation_fraction"]),
            "loss": a.selectbox("Loss", ["softmax", "bpr"],
                                index=["softmax", "bpr"].index(defaults["loss"])),
            "seed": b.number_input("Seed", value=defaults["seed"], step=1),
            "max_age_hours": c.number_input("Maximum model age (hours)",
                                            value=float(defaults["max_age_hours"])),
        }
        train_col, save_col = st.columns(2)
        if train_col.form_submit_button("Train with these settings",
                                        icon=":material/play_arrow:"):
            _start(force=True, config=values)
        if saves and save_col.form_submit_button("Save for every retrain",
                                                 icon=":material/save:"):
            _change_settings(training_settings.save_training_settings,
                             "Saved: smart retrains train with these settings from now on. "
                             "The active model reads as stale until one has.",
                             settings=values)


if _ui.may("start_training"):
    _controls()
else:
    st.caption(f"Your role ({_ui.actor().role}) may look at trainings but not start or cancel "
               "them.")


@st.fragment(run_every=2 if state.running or watched else 10)
@_ui.guarded
def live_progress() -> None:
    """Polls the training runs table; when a run starts or ends (or the per-user run this page
    started finishes), the whole page reruns."""
    run = console.running_training()
    mine = st.session_state.get("training_watched")
    if (run.id if run else None) != st.session_state.get("training_seen_run") or (
            mine is not None and (done := console.run_outcome(mine)) is not None and done.final):
        _state.clear()
        st.rerun(scope="app")
    if run is None:
        st.caption("No training is running.")
        return
    who = f" by {_ui.plain(run.requested_by)}" if run.requested_by else ""
    st.progress(run.fraction, text=f"Run {run.id} ({run.trigger}{who}): {run.epoch_text}"
                                   + ("" if run.last_loss is None else f", loss {run.last_loss:.4f}"))
    if _ui.may("cancel_training"):
        if run.cancel_requested_by:
            st.caption("Cancel requested by")
            st.text(f"{run.cancel_requested_by}: it stops at its next batch.")
        elif st.button("Cancel this training", icon=":material/stop_circle:",
                       key=f"cancel_run_{run.id}",
                       help="Stops at the next batch; the active model stays as it is"):
            try:
                training.cancel_training(run_id=run.id, actor=_ui.actor())
            except Exception as error:  # noqa: BLE001 - a failed write says so on the page
                _ui.error_box(error)
            else:
                st.rerun(scope="app")
    if run.progress:
        _ui.chart(_ui.loss_figure(run.progress, run.total_epochs, title="Loss, live"),
                  key="live_loss")


st.subheader("Running training")
st.session_state["training_seen_run"] = state.running.id if state.running else None
st.session_state["training_watched"] = watched
live_progress()

st.subheader("History")
if state.history:
    _ui.table(state.history, key="run_history", column_config={
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
        "last_seen": st.column_config.DatetimeColumn("last seen", format="YYYY-MM-DD HH:mm:ss",
                                                     help="the newest of identical skips"),
        "times": st.column_config.NumberColumn("times", help="identical skips folded here"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
        # both fit at 1440 px; the whole text shows on hover or in the cell's overlay
        "reason": st.column_config.TextColumn("reason", width="medium"),
        "error": st.column_config.TextColumn("error", width="medium"),
    })
else:
    st.caption("No training has run yet.")
