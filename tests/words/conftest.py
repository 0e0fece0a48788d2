"""The words tests reuse the policy tests' small policy and fake index."""

from tests.policy.conftest import catalog, config, engine_factory, write_policy  # noqa: F401
