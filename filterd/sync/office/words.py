"""Words for the office's pages and documents: categories and age tiers as people read them.

Categories come from the one category catalog (filterd.words, the shipped
blocklists/categories.yaml: the office has no school's policy loaded); tiers from the
shipped policy's group labels. The ids the roll-up
adds (`other`, `none`, `all`) and any id the office does not know get words too, so no
page or document shows an internal code.
"""

from __future__ import annotations

from functools import cache

import yaml

from filterd.config import REPO_ROOT

EXTRA_CATEGORIES = {
    "none": ("Không thuộc nhóm bị lọc", "Not in a filtered category"),
    "other": ("Các nhóm khác (gộp để bảo vệ học sinh)", "Other categories (merged for privacy)"),
    "bypass": ("Cố vượt bộ lọc", "Filter bypass"),
}
EXTRA_TIERS = {
    "all": ("Tất cả học sinh (gộp để bảo vệ học sinh)", "All students (merged for privacy)"),
    "unknown": ("Thiết bị chưa xác định", "Unidentified devices"),
    "other": ("Nhóm khác", "Other group"),
}
UNKNOWN_CATEGORY = ("Nhóm nội dung khác", "Another category")
UNKNOWN_TIER = ("Nhóm do trường đặt", "A group set by the school")
ACTIONS = {"allow": ("Cho phép", "Allowed"), "block": ("Chặn", "Blocked"),
           "rewrite": ("Tìm kiếm an toàn", "Safe search"),
           "enforce": ("Chế độ hạn chế", "Restricted mode")}


@cache
def _categories() -> dict[str, tuple[str, str]]:
    from filterd.words.explain import bundled_catalog

    out = {cid: (c.label("vi"), c.label("en")) for cid, c in bundled_catalog().items()}
    return {**out, **EXTRA_CATEGORIES}


@cache
def _tiers() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    try:
        raw = yaml.safe_load((REPO_ROOT / "policies" / "policy.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    for gid, g in (raw.get("groups") or {}).items():
        if isinstance(g, dict) and g.get("label_vi"):
            out[str(gid)] = (str(g["label_vi"]), str(g.get("label_en") or g["label_vi"]))
    return {**out, **EXTRA_TIERS}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def category(cid: str, lang: str = "vi") -> str:
    return _pick(_categories().get(cid, UNKNOWN_CATEGORY), lang)


def tier(gid: str, lang: str = "vi") -> str:
    return _pick(_tiers().get(gid, UNKNOWN_TIER), lang)


def action(aid: str, lang: str = "vi") -> str:
    return _pick(ACTIONS.get(aid, (aid, aid)), lang)


def category_order(cid: str) -> tuple[int, str]:
    """Catalog order (most serious first), the roll-up's words last."""
    ids = list(_categories())
    return (ids.index(cid) if cid in ids else len(ids), cid)


def tier_order(gid: str) -> tuple[int, str]:
    ids = list(_tiers())
    return (ids.index(gid) if gid in ids else len(ids), gid)
