"""``python -m flask_spark keygen|sandbox``: the commands that need no app."""

from __future__ import annotations

import click

from .ext.cli import keygen, sandbox


@click.group(help="flask-spark commands that need no Flask app (see also `flask spark`).")
def main() -> None:
    """The command group."""


main.add_command(keygen)
main.add_command(sandbox)

if __name__ == "__main__":
    main()
