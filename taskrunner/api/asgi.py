"""`app` for ASGI servers (`uvicorn main:app`): configured from the environment when it
starts, not when it is imported."""

from taskrunner.api import create_app

app = create_app()
