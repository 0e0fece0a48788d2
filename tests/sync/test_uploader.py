import pytest

from filterd.errors import ConfigError
from filterd.sync.signing import Credential
from filterd.sync.uploader import OfficeUnreachable, Uploader, UploadRejected, check_office_url

from .conftest import free_port


@pytest.mark.parametrize("url", ["http://office.example", "ftp://x", "office.example",
                                 "http://10.0.0.1:8090"])
def test_plain_http_only_on_loopback(url):
    with pytest.raises(ConfigError, match="office_url"):
        check_office_url(url)


@pytest.mark.parametrize("url", ["https://office.example/", "http://127.0.0.1:8090",
                                 "http://localhost:1", "http://[::1]:9"])
def test_https_or_loopback_accepted(url):
    assert check_office_url(url) == url.rstrip("/")


def test_unreachable_office_is_a_clear_message():
    port = free_port()
    up = Uploader(f"http://127.0.0.1:{port}", Credential.issue("s1"), timeout=5)
    with pytest.raises(OfficeUnreachable, match=f"office unreachable at http://127.0.0.1:{port}"):
        up.send(b"x")


def test_refusal_carries_the_office_message(office):
    up = Uploader(office.url, Credential.issue("ghost"), timeout=10)
    with pytest.raises(UploadRejected, match="unknown school 'ghost'") as err:
        up.send(b"\x1f\x8b")
    assert err.value.status == 401
