"""Errors a person can act on. The CLI prints them as one line and exits 2; pages show them."""


class BeaconError(Exception):
    """Bad input or an impossible request: the message says what was wrong."""


class UnknownUser(BeaconError):
    def __init__(self, who: str):
        super().__init__(f"unknown user: {who!r} (no user has that email)")
        self.who = who


class UnknownEvent(BeaconError):
    field = "event_id"

    def __init__(self, event_id: str):
        super().__init__(f"unknown event: {event_id!r} (no event has that id)")
        self.event_id = event_id


class ModelNotFitted(BeaconError):
    """A model was asked to score before it was fitted or loaded."""
