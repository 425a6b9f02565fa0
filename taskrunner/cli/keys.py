"""`taskrunner api-key`: make the API keys that the HTTP API checks.

The command line itself needs no key: it talks to the database directly.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from taskrunner.apikeys import Scope, new_key
from taskrunner.cli.repeats import OneValueOnceGroup

api_key_app = typer.Typer(
    name="api-key",
    cls=OneValueOnceGroup,
    help="Make API keys for the HTTP API (the command line needs none).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@api_key_app.command("new")
def new(
    name: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Who the key is for: 1 to 64 letters, digits, '_', '.' or '-'. It names the "
            "caller and scopes its idempotency keys.",
            show_default=False,
        ),
    ],
    scope: Annotated[
        Scope,
        typer.Option(
            metavar="SCOPE",
            help="What the key may do: read < run < admin, each including the ones before.",
        ),
    ] = "read",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the key and its line as a JSON object.")
    ] = False,
) -> None:
    """Make a new random API key and print it, this once, with the line that configures it.

    The key goes to the client, which sends `Authorization: Bearer KEY`. The line
    (`NAME SCOPE sha256:HEX`) goes into the file that TASKRUNNER_API_KEYS_FILE names, or
    into TASKRUNNER_API_KEYS: the server keeps only the key's SHA-256 digest. Restart the
    server to load it. To revoke the key later, add ` revoked` to its line.
    """
    made = new_key(name, scope)
    if as_json:
        document = {"name": name, "scope": scope, "key": made.token, "line": made.key.line()}
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"key   {made.token}")
    typer.echo(f"line  {made.key.line()}")
    typer.echo(
        "taskrunner: the key is shown this once; the server needs only the line "
        "(in TASKRUNNER_API_KEYS_FILE or TASKRUNNER_API_KEYS)",
        err=True,
    )
