"""The pure core: the flow model, its validation, and the interpreter.

Nothing in this package imports an I/O library (SQLAlchemy, FastAPI, Typer, YAML), reads a
clock or draws a random number; `tests/unit/test_engine_purity.py` keeps it so.
"""
