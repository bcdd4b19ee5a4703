"""The compatibility tests load torch and every first-party plugin on purpose: they run real
techniques on tiny models, so the core's rule that its tests stay pure Python is lifted here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _stays_light() -> Iterator[None]:
    yield
