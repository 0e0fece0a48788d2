"""The DNS server certificate issued by the school CA: names, chain, key mode, renewal."""

import json
import ssl
import stat

from filterd.http.ca import ensure_ca
from filterd.http.servercert import CERT_FILE, META_FILE, ensure_server_cert


def test_issued_for_the_names_verified_by_the_school_ca_and_renewed_on_change(tmp_path):
    ca = ensure_ca(tmp_path / "ca", "THCS Test")
    cert, key = ensure_server_cert(ca, ("dns.school.test",), ("10.10.0.1",))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    info = ssl._ssl._test_decode_cert(str(cert))   # the first certificate of the chain
    assert ("DNS", "dns.school.test") in info["subjectAltName"]
    assert ("IP Address", "10.10.0.1") in info["subjectAltName"]
    # (A client trusting only the school CA verifying it: tests/test_daemon_modern.py.)
    first = cert.read_bytes()
    assert ensure_server_cert(ca, ("dns.school.test",), ("10.10.0.1",)) == (cert, key)
    assert cert.read_bytes() == first                      # unchanged names: kept
    ensure_server_cert(ca, ("dns.school.test",), ("10.10.0.1", "10.10.0.2"))
    assert cert.read_bytes() != first                      # new address: issued again
    meta = json.loads((ca.directory / META_FILE).read_text())
    assert meta["addresses"] == ["10.10.0.1", "10.10.0.2"]
    meta["not_after"] = 0                                  # about to expire: issued again
    (ca.directory / META_FILE).write_text(json.dumps(meta))
    again = (ca.directory / CERT_FILE).read_bytes()
    ensure_server_cert(ca, ("dns.school.test",), ("10.10.0.1", "10.10.0.2"))
    assert (ca.directory / CERT_FILE).read_bytes() != again
