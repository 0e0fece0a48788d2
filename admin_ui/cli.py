"""`filterd admin ...`: the admin page's commands, registered with the `filterd` command
through the `filterd.commands` entry point (setup.cfg), so nothing in filterd imports
admin_ui."""

from __future__ import annotations

import click


def _admin_listen(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("write HOST:PORT, e.g. 127.0.0.1:8081")
    return host.strip("[]"), int(port)


@click.group("admin")
def admin_group() -> None:
    """The admin web page: serve it, and create accounts.

    Example: filterd admin create-user thu.ha --role admin
    """


@admin_group.command("serve")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              envvar="FILTERD_CONFIG",
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--listen", help="HOST:PORT to listen on (default: admin.listen from the config).")
@click.option("--insecure-cookies", is_flag=True,
              help="Send the session cookie over plain HTTP (only on a trusted LAN without TLS).")
def admin_serve(config_path: str | None, listen: str | None, insecure_cookies: bool) -> None:
    """Serve the admin page with waitress.

    Example: filterd admin serve --config /etc/filterd/filterd.yaml
    """
    from admin_ui.serve import serve

    serve(config_path, listen=_admin_listen(listen), secure_cookies=not insecure_cookies)


@admin_group.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "teacher", "viewer"]), required=True,
              help="admin: everything; teacher: why-blocked, reviews, overrides; "
                   "viewer: read-only.")
@click.option("--groups", default="", help="Comma-separated group ids a teacher acts for.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              envvar="FILTERD_CONFIG",
              help="filterd.yaml (default: the embedded defaults).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_create_user(name: str, role: str, groups: str, config_path: str | None,
                      password_stdin: bool) -> None:
    """Create an account for the admin page (there is no default password).

    Example: filterd admin create-user co.lan --role teacher --groups thcs
    """
    from admin_ui.errors import AdminError
    from admin_ui.serve import add_user

    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        created = add_user(config_path, name, password, role, groups)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {created}")
