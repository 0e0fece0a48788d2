"""Two-phase engine building: load and validate everything, then hand back a new Engine.

`build_engine` reads the category catalog, every policy file, the compiled list
index and the overrides file, validates them all, and returns a complete new
Engine or raises ConfigError / ListError. It never touches a running engine: the
daemon swaps the returned engine in only when building succeeded, so a broken
file leaves the previous snapshot serving.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from filterd.config import Config
from filterd.errors import ConfigError
from filterd.policy import builtin
from filterd.policy.catalog import Catalog, load_catalog
from filterd.policy.clients import NeighbourTable
from filterd.policy.engine import CategoryIndex, Engine
from filterd.policy.feeds import FeedTables, reported_table
from filterd.policy.loader import Policy, load_policy
from filterd.policy.overrides import OverrideSet
from filterd.state.overrides import load as load_overrides


def open_default_index(config: Config) -> CategoryIndex:
    """The compiled index under `<data_dir>/lists/current`.

    On a fresh install (no index yet) the lists part compiles the shipped seed
    lists first, so the appliance filters offline from the first start.
    """
    from filterd.lists.seed import ensure_index

    return ensure_index(config.lists_dir)


def build_policy(config: Config, *, policy_dir: Path | None = None,
                 catalog: Catalog | None = None) -> tuple[Catalog, Policy]:
    catalog = catalog if catalog is not None else load_catalog(config.categories_file)
    policy = load_policy(policy_dir if policy_dir is not None else config.policy_dir, catalog)
    return catalog, policy


def build_engine(config: Config, *, index: CategoryIndex | None = None,
                 overrides: OverrideSet | None = None,
                 neighbours: NeighbourTable | None = None,
                 policy_dir: Path | None = None,
                 feeds: FeedTables | None = None) -> Engine:
    """Load and validate everything; return a new Engine or raise ConfigError/ListError."""
    catalog, policy = build_policy(config, policy_dir=policy_dir)
    for section, key in (("http", "intercept_groups"), ("dns", "keep_ech_groups")):
        # A typo would silently leave HTTPS undecrypted, or ECH stripped, for that group.
        named = getattr(getattr(config, section, None), key, ())
        unknown = [g for g in named if g not in policy.groups]
        if unknown:
            raise ConfigError(f"names group(s) not in the policy: {', '.join(unknown)}",
                              file=str(config.source_file or "<defaults>"),
                              key=f"{section}.{key}")
    if overrides is None:
        overrides = load_overrides(config.overrides_file, policy.groups)
    else:
        for o in overrides:
            if o.group not in policy.groups:
                raise ConfigError(f"override {o.id!r} names an unknown group {o.group!r}",
                                  file=str(config.overrides_file))
    if index is None:
        index = open_default_index(config)
    if feeds is None:
        from filterd.sync.feedpull import load_feed_tables

        feeds = load_feed_tables(config.feeds_dir, config.sync.office_key_file)
        reported = reported_sites(config.data_dir)
        if reported:
            feeds = dataclasses.replace(feeds, reported=reported_table(reported))
    return Engine(policy, catalog, timezone=config.timezone, index=index, overrides=overrides,
                  neighbours=neighbours, bypass=builtin.bypass_table(),
                  safe_search=builtin.safe_search_table(), youtube=builtin.youtube_table(),
                  feeds=feeds)


def reported_sites(data_dir: Path) -> list[tuple[str, str]]:
    """Sites the school blocked from its report queue (none before the first report)."""
    from filterd.state.db import db_path

    if not db_path(data_dir).exists():
        return []
    from filterd.state.site_reports import SiteReportStore

    store = SiteReportStore(data_dir)
    try:
        return store.blocked_sites()
    finally:
        store.close()
