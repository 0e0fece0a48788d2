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


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="filterd.yaml; default: the embedded defaults (everything on 127.0.0.1).",
)
def proxy(config_path: str | None) -> None:
    """Run the HTTP side alone: block page server, SNI relay, mitmproxy for intercepting groups.

    Example: filterd proxy --config /etc/filterd/filterd.yaml
    """
    from filterd.http.service import run_forever

    run_forever(config_path)
