from taskrunner.api.asgi import app  # noqa: F401 - for `uvicorn main:app`
