import pytest

from filterd.sync.signing import (
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    Credential,
    CredentialError,
    sign,
    verify,
)


def test_credential_line_round_trips(tmp_path):
    cred = Credential.issue("thcs-01")
    assert Credential.parse(cred.line()) == cred
    (tmp_path / "token").write_text(cred.line() + "\n")
    assert Credential.read(tmp_path / "token") == cred


@pytest.mark.parametrize("text", ["", "filterd-school-v1:x", "other:thcs:AAAA",
                                  "filterd-school-v1:bad id:" + "A" * 43,
                                  "filterd-school-v1:ok:c2hvcnQ"])
def test_malformed_credentials_are_refused(text):
    with pytest.raises(CredentialError):
        Credential.parse(text)


def test_missing_credential_file_names_the_file(tmp_path):
    with pytest.raises(CredentialError, match=r"token.*cannot read"):
        Credential.read(tmp_path / "token")


def test_signature_covers_school_time_nonce_and_body():
    cred = Credential.issue("s1")
    h = sign(cred, b"body", 1_700_000_000)
    args = ("s1", h[H_TIMESTAMP], h[H_NONCE], h[H_SIGNATURE])
    assert verify(cred.key, *args, b"body")
    assert not verify(cred.key, *args, b"bodY")
    assert not verify(cred.key, "s2", *args[1:], b"body")
    assert not verify(cred.key, "s1", "1700000001", *args[2:], b"body")
    assert not verify(Credential.issue("s1").key, *args, b"body")
    assert h[H_NONCE] != sign(cred, b"body", 1_700_000_000)[H_NONCE]
