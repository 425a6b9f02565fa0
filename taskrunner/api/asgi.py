"""`app` for ASGI servers (`uvicorn main:app`): configured from the environment when it
starts, not when it is imported. It is a long-running server's app, so it tunes the garbage
collector once started, and reloads the flows on `SIGHUP`."""

from taskrunner.api import create_app
from taskrunner.runtime import settle_memory

app = create_app(on_started=settle_memory, reload_on_sighup=True)
