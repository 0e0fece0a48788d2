"""The e-mail channel against aiosmtpd on loopback: STARTTLS and implicit TLS with a login,
a certificate that is not trusted, a password file others can read, a refused recipient."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from filterd.alerts.email import DeliveryError, EmailChannel, SmtpSettings
from filterd.alerts.render import Rendered
from tests.alerts.harness import SmtpSink
from tests.dns.dnshelpers import free_port

pytestmark = pytest.mark.integration
MSG = Rendered("[filterd] Cảnh báo: thử", "Nội dung cảnh báo\n", {})


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.truong.test")])
    now = dt.datetime.now(dt.UTC)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
         .sign(key, hashes.SHA256()))
    (d / "cert.pem").write_bytes(c.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "cert.pem", d / "key.pem"


class AuthSink(SmtpSink):
    def __init__(self, cert: tuple[Path, Path], *, implicit: bool) -> None:
        super().__init__()
        self.cert, self.implicit = cert, implicit
        self.logins: list[tuple[str, str]] = []

    def start(self) -> AuthSink:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*map(str, self.cert))

        def auth(server, session, envelope, mechanism, data):
            self.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=data.password == b"app-password-123")

        kw = {"ssl_context": ctx} if self.implicit else {"tls_context": ctx,
                                                          "require_starttls": True}
        self.controller = Controller(self, hostname="localhost", port=self.port,
                                     authenticator=auth, auth_require_tls=not self.implicit,
                                     server_hostname="localhost", **kw)
        self.controller.start()
        return self


def secret(tmp_path: Path, text: str = "app-password-123", mode: int = 0o600) -> Path:
    p = tmp_path / "smtp-password"
    p.write_text(text + "\n")
    p.chmod(mode)
    return p


@pytest.mark.parametrize(("security", "implicit"), [("starttls", False), ("tls", True)])
def test_tls_and_login_with_the_password_file(tmp_path, cert, security, implicit):
    sink = AuthSink(cert, implicit=implicit).start()
    try:
        ch = EmailChannel(SmtpSettings(
            host="localhost", port=sink.port, security=security, user="canhbao@truong.test",
            password_file=secret(tmp_path), mail_from="canhbao@truong.test",
            ca_file=cert[0]), "thcs-ba-dinh")
        ch.send("hieutruong@truong.test", MSG, "alert-abc-1")
        sink.wait(1)
        m = sink.messages[0]
        assert sink.logins == [("canhbao@truong.test", "app-password-123")]
        assert m["Message-ID"] == "<alert-abc-1@thcs-ba-dinh.filterd>"
        assert m["Subject"] == MSG.subject and m.get_content().replace("\r\n", "\n") == MSG.text
    finally:
        sink.stop()


def test_an_untrusted_certificate_is_refused(tmp_path, cert):
    sink = AuthSink(cert, implicit=False).start()
    try:
        ch = EmailChannel(SmtpSettings(host="localhost", port=sink.port, security="starttls",
                                       user="u", password_file=secret(tmp_path)), "s")
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            ch.send("a@truong.test", MSG, "k")
        assert sink.messages == [] and sink.logins == []   # no password sent
    finally:
        sink.stop()


def test_a_password_file_others_can_read_is_not_used(tmp_path, cert):
    sink = AuthSink(cert, implicit=False).start()
    try:
        ch = EmailChannel(SmtpSettings(host="localhost", port=sink.port, security="starttls",
                                       user="u", password_file=secret(tmp_path, mode=0o644),
                                       ca_file=cert[0]), "s")
        with pytest.raises(DeliveryError, match="readable by others"):
            ch.send("a@truong.test", MSG, "k")
        assert sink.logins == []
    finally:
        sink.stop()


def test_config_refuses_a_readable_password_file_and_a_password_without_tls(tmp_path):
    from filterd.config import load_config
    from filterd.errors import ConfigError, ConfigErrors

    secret(tmp_path, mode=0o640)
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text("alerts:\n  smtp_host: smtp.gmail.com\n  smtp_user: a@b.vn\n"
                   "  smtp_password_file: smtp-password\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    assert exc.value.line == 4 and exc.value.key == "alerts.smtp_password_file"
    assert "readable by others" in str(exc.value)
    (tmp_path / "smtp-password").chmod(0o600)
    assert load_config(cfg).alerts.smtp_password_file == tmp_path / "smtp-password"
    cfg.write_text("alerts:\n  smtp_host: smtp.gmail.com\n  smtp_user: a@b.vn\n"
                   "  smtp_password_file: smtp-password\n  smtp_security: none\n")
    with pytest.raises((ConfigError, ConfigErrors), match="never sent without TLS"):
        load_config(cfg)


def test_mail_server_down_is_temporary_refused_recipient_permanent(tmp_path):
    port = free_port()
    ch = EmailChannel(SmtpSettings(host="127.0.0.1", port=port, security="none"), "s")
    with pytest.raises(DeliveryError, match="cannot reach the mail server") as exc:
        ch.send("a@truong.test", MSG, "k")
    assert not exc.value.permanent

    class Refusing(SmtpSink):
        async def handle_RCPT(self, server, session, envelope, address, options):
            return "550 5.1.1 no such user"

    sink = Refusing(port).start()
    try:
        with pytest.raises(DeliveryError) as exc:
            ch.send("nobody@truong.test", MSG, "k")
        assert exc.value.permanent
    finally:
        sink.stop()


def test_a_line_break_in_a_device_name_stays_in_the_subject(tmp_path):
    sink = SmtpSink().start()
    try:
        ch = EmailChannel(SmtpSettings(host="127.0.0.1", port=sink.port, security="none",
                                       mail_from="a@truong.test"), "s")
        ch.send("b@truong.test", Rendered("Máy 1\r\nBcc: x@evil.test", "x\n", {}), "k")
        sink.wait(1)
        assert sink.envelopes[0][1] == ["b@truong.test"]
        assert sink.messages[0]["Subject"] == "Máy 1 Bcc: x@evil.test"
        assert sink.messages[0]["Bcc"] is None
    finally:
        sink.stop()
