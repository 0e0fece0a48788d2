"""Sites: the registrable domain (Public Suffix List, shipped) plus a service's companions."""

from __future__ import annotations

import pytest

from filterd.policy.sites import SERVICES, registrable, site_domains, site_for


@pytest.mark.parametrize(("typed", "root", "label_vi"), [
    ("www.facebook.com", "facebook.com", "Facebook (7 tên miền)"),
    ("m.facebook.com", "facebook.com", "Facebook (7 tên miền)"),
    ("static.xx.fbcdn.net", "facebook.com", "Facebook (7 tên miền)"),
    ("https://www.youtube.com/watch", None, None),
    ("classroom.google.com", "classroom.google.com", "Google Classroom (9 tên miền)"),
    ("www.bbc.co.uk", "bbc.co.uk", "bbc.co.uk"),
    ("a.b.edu.vn", "b.edu.vn", "b.edu.vn"),
    ("hocmai.vn", "hocmai.vn", "HOCMAI"),
])
def test_site_for(typed, root, label_vi):
    if root is None:
        with pytest.raises(ValueError):
            site_for(typed)           # the admin page strips URLs first (why.site_name)
        return
    site = site_for(typed)
    assert site.root == root and site.label("vi") == label_vi
    assert site.domains[0] == root and site_domains(root) == site.domains


def test_google_services_never_open_all_of_google():
    for s in SERVICES:
        assert "google.com" not in s.domains and "www.google.com" not in s.domains
    assert site_for("meet.google.com").service.name == "Google Meet"
    assert site_for("www.google.com").root == "google.com"   # no service: the plain site


def test_public_suffix_list_is_shipped():
    assert registrable("x.y.blogspot.com") == "y.blogspot.com"   # a private suffix
    assert registrable("vn") == "vn"
