"""Placeholder until its owner lands it (this session): replaced, never shipped."""


def register(subparsers) -> None:
    pass
