"""Errors a person can act on. The CLI prints them as one line and exits 2; pages show them."""


class BeaconError(Exception):
    """Bad input or an impossible request: the message says what was wrong."""


class UnknownUser(BeaconError):
    def __init__(self, who: str):
        super().__init__(f"unknown user: {who!r} (no user has that email)")
        self.who = who


class ModelNotFitted(BeaconError):
    """A model was asked to score before it was fitted or loaded."""
