from __future__ import annotations

import pytest

from filterd.errors import ConfigError
from filterd.http.categories import load_categories


def test_shipped_map_has_child_words_in_both_languages():
    cats = load_categories()
    assert cats["adult"].sensitive and not cats["games"].sensitive
    assert cats["gambling"].child("en").startswith("This is a gambling")
    assert cats["gambling"].label("vi") == "Cờ bạc, cá cược"


@pytest.mark.parametrize("body,key", [
    ("version: 1\n", "categories"),
    ("categories:\n  x: {vi: a, en: b, child_vi: c}\n", "categories.x"),
    ("categories:\n  x: {vi: a, en: b, child_vi: c, child_en: d, sensitive: maybe}\n",
     "categories.x.sensitive"),
])
def test_bad_maps_name_the_key(tmp_path, body, key):
    p = tmp_path / "c.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_categories(p)
    assert err.value.key == key and err.value.file == str(p)
