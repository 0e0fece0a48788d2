import ast
import re
from pathlib import Path

from filterd.sync.office import i18n

OFFICE = Path(i18n.__file__).parent


def _template_strings():
    for f in (OFFICE / "templates" / "office").glob("*.html"):
        yield from re.findall(r'_\("([^"]+)"\)', f.read_text())


def _query_strings():
    tree = ast.parse((OFFICE / "queries.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Table":
            for arg in node.args:
                if isinstance(arg, ast.Constant):
                    yield arg.value
                elif isinstance(arg, ast.List):
                    yield from (e.value for e in arg.elts if isinstance(e, ast.Constant))


def test_every_visible_string_has_a_vietnamese_translation():
    strings = set(_template_strings()) | set(_query_strings())
    assert len(strings) > 30
    missing = sorted(s for s in strings if s not in i18n.VI)
    assert missing == []


def test_english_is_the_key_and_vietnamese_the_default():
    assert i18n.DEFAULT == "vi"
    assert i18n.translate("Schools", "en") == "Schools"
    assert i18n.translate("Schools", "vi") == "Trường học"
