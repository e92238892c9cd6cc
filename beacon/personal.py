"""A user's personal (fold-in) model: forgetting it on request."""
from __future__ import annotations

from beacon.actions import Actor, state_changing
from beacon.errors import UnknownUser
from data_access import models_store
from data_access.catalog import user_by_email


@state_changing("delete_user_model", needs="administer")
def delete_user_model(email: str, *, actor: Actor) -> int:
    """Delete the user's fold-in versions; returns how many. The global model serves them next."""
    user = user_by_email(email)
    if user is None:
        raise UnknownUser(email)
    return models_store.delete_user_versions(user.id)
