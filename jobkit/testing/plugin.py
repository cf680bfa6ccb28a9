"""The pytest plugin jobkit installs (entry point ``pytest11``): the ``jobkit_test``
fixture, a started :class:`jobkit.testing.JobkitTest` for one test.

fakeredis and freezegun (``pip install 'jobkit[testing]'``) are imported only when a
test asks for the fixture, so a project without them loses nothing by having jobkit
installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from jobkit.testing import JobkitTest


@pytest.fixture
def jobkit_test() -> Iterator[JobkitTest]:
    """jobkit on an in-memory Redis with a clock the test moves (see jobkit.testing)."""
    try:
        from jobkit.testing import JobkitTest
    except ImportError as exc:  # the extra is missing: say which
        raise pytest.UsageError(
            f"jobkit_test needs jobkit's testing extra: pip install 'jobkit[testing]' ({exc})"
        ) from None
    with JobkitTest() as jt:
        yield jt
