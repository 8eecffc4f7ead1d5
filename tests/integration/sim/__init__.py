"""Local-venue integration tests; `support` holds their shared helpers (its asserts get pytest's rewriting)."""

import pytest

pytest.register_assert_rewrite("tests.integration.sim.support")
