"""The long-running processes: `serve` (the HTTP API, and a worker unless told not to)
and `worker` (queued tasks only).

Each registers itself on the one `app` of `taskrunner.cli`; the web layer and the
database are imported when the command runs, not when the command line starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from taskrunner.cli import _open_runtime, app
from taskrunner.errors import EXIT_USAGE
from taskrunner.logs import configure_logging
from taskrunner.settings import Settings

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

    from taskrunner.runtime import Runtime

START_RETRY_SECONDS = 2.0
"""How often a starting worker tries again to reach its database."""


@app.command("serve")
def serve(
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS",
            help="The address to listen on. Beyond loopback only with API keys configured, "
            "or --insecure.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="The port to listen on.")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Serve HTTP only: leave queued tasks to workers."),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen beyond loopback even though no API key is configured: anyone who "
            "reaches the port may read, start and cancel every task.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (as `uvicorn main:app` does), with a worker in the same process
    for queued tasks unless --no-worker. Flow files that change are reloaded (see
    TASKRUNNER_FLOWS_RELOAD_SECONDS), and so are all on SIGHUP or POST /flows/reload.

    Without API keys (TASKRUNNER_API_KEYS_FILE, TASKRUNNER_API_KEYS) the API is open, so it
    listens on a loopback address only, unless --insecure. Exit status 2 otherwise."""
    import dataclasses

    from taskrunner.errors import UnprotectedServerError

    settings = Settings.from_env()
    configure_logging(settings.log, default_level="INFO")
    if settings.api_keys is None and not insecure and not _is_loopback(host):
        raise UnprotectedServerError(host)

    from taskrunner.api import create_app
    from taskrunner.api.server import serve as serve_http
    from taskrunner.catalog import directory_fingerprint
    from taskrunner.runtime import settle_memory

    if no_worker:
        settings = dataclasses.replace(settings, worker_concurrency=0)
    # A flows directory that is not there stops the server before it starts, in one line
    # (the app would find it too, but in its lifespan, where uvicorn shows a traceback).
    directory_fingerprint(settings.flows_dir)
    app = create_app(settings, on_started=settle_memory, reload_on_sighup=True)
    serve_http(app, settings, host, port)


@app.command("worker")
def worker(
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, max=256, help="How many tasks to run at once.")
    ] = 4,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            min=0,
            max=65_535,
            help="Serve the worker's metrics for Prometheus on this port, at any path "
            "(/metrics); none by default.",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            metavar="HOST", help="The address the metrics are served on (--metrics-port)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Run queued tasks until stopped. Any number of workers, on any machines, can share
    one PostgreSQL database. SIGTERM (or Ctrl-C) drains: each task in hand finishes its
    current step, goes back to the queue, and the worker exits. SIGHUP reloads the flows
    (so do changed flow files, see TASKRUNNER_FLOWS_RELOAD_SECONDS)."""
    import signal
    import threading

    settings = Settings.from_env()
    configure_logging(settings.log, default_level="INFO")
    if not settings.is_postgres:
        typer.echo(
            "error: `taskrunner worker` needs PostgreSQL (set DATABASE_URL): SQLite has one "
            "writer, so on SQLite queued tasks run in the API's own process "
            "(`taskrunner serve`)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    from taskrunner.runtime import settle_memory

    runtime = _open_when_reachable(settings, stop)
    if runtime is None:
        typer.echo("taskrunner: worker stopped before the database could be reached", err=True)
        return
    settle_memory()
    try:
        exporter = _serve_metrics(runtime, metrics_host, metrics_port)
    except BaseException:
        runtime.close()
        raise
    watcher = runtime.flow_watcher()
    watcher.start()
    signal.signal(signal.SIGHUP, lambda *_: watcher.wake())
    try:
        typer.echo(f"taskrunner: worker {runtime.service.owner} running", err=True)
        runtime.worker(concurrency).run(stop)
    finally:
        watcher.stop()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        runtime.close()
    typer.echo("taskrunner: worker stopped", err=True)


def _serve_metrics(runtime: Runtime, host: str, port: int | None) -> WSGIServer | None:
    """Serve the runtime's metrics on (`host`, `port`) in a thread of their own, if a port
    is given. Raises `ListenError` when the address cannot be had."""
    if port is None:
        return None
    from prometheus_client import start_http_server

    from taskrunner.errors import ListenError

    try:
        server, _ = start_http_server(port, host, registry=runtime.metrics.registry)
    except OSError as exc:
        raise ListenError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    typer.echo(f"taskrunner: metrics on http://{host}:{server.server_port}/metrics", err=True)
    return server


def _is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def _open_when_reachable(settings: Settings, stop: threading.Event) -> Runtime | None:
    """The runtime of a long-running process, which starts whenever its database does: a
    database that cannot be reached yet is tried again every few seconds, said once, until
    it answers or `stop` is set (then None). Anything else stops the start at once."""
    from taskrunner.errors import StoreUnavailableError

    waiting = False
    while not stop.is_set():
        try:
            return _open_runtime(settings, quiet=waiting)
        except StoreUnavailableError as exc:
            if not waiting:
                typer.echo(f"taskrunner: waiting for the database: {exc.message}", err=True)
                waiting = True
            stop.wait(START_RETRY_SECONDS)
    return None
