import os

import pytest

from filterd.sync.signing import (
    H_KEY,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    Credential,
    CredentialError,
    b64e,
    key_id,
    public_of,
    sign,
    sign_bytes,
    verify,
    verify_bytes,
)


def test_credential_line_round_trips_and_is_written_0600(tmp_path):
    cred = Credential.generate("thcs-01")
    assert Credential.parse(cred.line()) == cred
    cred.write(tmp_path / "token")
    assert os.stat(tmp_path / "token").st_mode & 0o777 == 0o600
    assert Credential.read(tmp_path / "token") == cred
    assert "key=" not in repr(cred) and b64e(cred.key) not in repr(cred)


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    cred = Credential.generate("thcs-01")
    cred.write(tmp_path / "token")
    os.chmod(tmp_path / "token", 0o644)
    with pytest.raises(CredentialError, match="readable by others"):
        Credential.read(tmp_path / "token")


@pytest.mark.parametrize("text", ["", "filterd-school-v2:x", "other:thcs:AAAA",
                                  "filterd-school-v2:bad id:" + "A" * 43,
                                  "filterd-school-v2:ok:c2hvcnQ",
                                  "filterd-school-v2:ok:" + "A" * 42 + "=="])
def test_malformed_credentials_are_refused(text):
    with pytest.raises(CredentialError):
        Credential.parse(text)


def test_an_old_shared_key_credential_says_to_enrol_again():
    with pytest.raises(CredentialError, match="enrol the appliance again"):
        Credential.parse("filterd-school-v1:thcs-01:" + "A" * 43)


def test_missing_credential_file_names_the_file(tmp_path):
    with pytest.raises(CredentialError, match=r"token.*cannot read"):
        Credential.read(tmp_path / "token")


def test_signature_covers_school_time_nonce_and_body():
    cred = Credential.generate("s1")
    h = sign(cred, b"body", 1_700_000_000)
    assert h[H_KEY] == key_id(cred.public) == cred.key_id
    args = ("s1", h[H_TIMESTAMP], h[H_NONCE], h[H_SIGNATURE])
    pub = cred.public
    assert verify(pub, *args, b"body")
    assert not verify(pub, *args, b"bodY")
    assert not verify(pub, "s2", *args[1:], b"body")
    assert not verify(pub, "s1", "1700000001", *args[2:], b"body")
    assert not verify(Credential.generate("s1").public, *args, b"body")
    assert not verify(pub, *args[:3], "not base64!", b"body")
    assert h[H_NONCE] != sign(cred, b"body", 1_700_000_000)[H_NONCE]


def test_toolkit_for_other_signed_documents():
    priv = Credential.generate("s").key
    sig = sign_bytes(priv, b"feed v7")
    assert verify_bytes(public_of(priv), b"feed v7", sig)
    assert not verify_bytes(public_of(priv), b"feed v8", sig)
    assert not verify_bytes(b"\0" * 31, b"feed v7", sig)   # a malformed key: False, no raise
