"""`filterd ...`: thin click commands over the library.

Every command's help ends with an Example. Commands print plain words and exit
non-zero on error; they never hide a traceback behind a default.
"""

from __future__ import annotations

import click

from filterd import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filterd")
def main() -> None:
    """filterd: an age-tiered DNS and HTTP content filter for school networks.

    Example: filterd check pornhub.com --client 10.10.1.23
    """


def _register_gateway() -> None:
    from filterd.gateway.commands import gateway

    main.add_command(gateway)


_register_gateway()
