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
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file (default: the embedded defaults, 127.0.0.1:5353).")
@click.option("-v", "--verbose", is_flag=True, help="Log every reload and worker event in detail.")
def run(config_path: str | None, verbose: bool) -> None:
    """Run the filtering daemon (DNS server and event log) until stopped.

    SIGHUP (or `filterd reload`) reloads the policy and lists; an invalid one is
    refused and the running one keeps serving.

    Example: filterd run --config /etc/filterd/filterd.yaml
    """
    import logging

    from filterd import daemon
    from filterd.config import load_config
    from filterd.errors import FilterdError

    daemon.configure_logging(logging.DEBUG if verbose else logging.INFO)
    try:
        config = load_config(config_path)
        code = daemon.run(config, config_path=config_path)
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(code)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file of the running daemon (default: the embedded defaults).")
def reload(config_path: str | None) -> None:
    """Check the policy and lists, then tell the running daemon to load them.

    Nothing is signalled if they are invalid: the error names the file, line and key.

    Example: filterd reload --config /etc/filterd/filterd.yaml
    """
    from filterd import daemon
    from filterd.config import load_config
    from filterd.errors import FilterdError

    try:
        config = load_config(config_path)
        pid = daemon.reload_running(config, load_config=lambda: load_config(config_path))
    except FilterdError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"reload requested (pid {pid})")
