"""What the `import` commands of `ivr fees` and `ivr residents` say when a spreadsheet is refused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import click


def refuse_import(problems: Sequence[tuple[int, str]]) -> NoReturn:
    """Print every problem of the file by its line, say that nothing was imported, and exit with status 1."""
    for line, message in problems:
        click.echo(f"line {line}: {message}", err=True)
    click.echo("nothing imported", err=True)
    raise SystemExit(1) from None
