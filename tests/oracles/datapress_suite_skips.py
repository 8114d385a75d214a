"""pytest plugin loaded into the official DataPress suite's run (``-p datapress_suite_skips``).

It skips, with a reason, the tests that need more than a DataPress site, so that the run
reports them as skipped rather than failed or silently deselected.
"""

from __future__ import annotations

import pytest

SKIPS = {
    "test_07_upload_from_s3": "needs cloud storage (a DigitalOcean Spaces bucket and its "
                              "SPACES_TEST_KEY/SECRET), not a DataPress site",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = SKIPS.get(item.name)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
