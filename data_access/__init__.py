"""Beacon's storage layer: SQLAlchemy tables, Alembic migrations and store functions.

Nothing here imports torch, streamlit or beacon. Store functions open one managed
session each and return plain data (frozen dataclasses, dicts, numpy arrays or DataFrames).
"""
