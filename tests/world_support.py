"""Small in-memory platforms for model tests: the TrainingData a list of registrations makes."""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from data_access.training_data import TrainingData


def registrations(rows: list[tuple[int, int, str, int]], users: pd.DataFrame,
                  events: pd.DataFrame, loaded_at: datetime) -> TrainingData:
    """A TrainingData of (user id, event id, type, unix time) rows, in time order."""
    inter = pd.DataFrame(rows, columns=["user_id", "event_id", "type", "occurred_at"])
    inter = inter.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    return TrainingData(interactions=inter, users=users, events=events, loaded_at=loaded_at)
