"""The GPU policy of the suite, shared by conftest.py and the GPU tests."""

from __future__ import annotations

import os

REQUIRE_GPU = os.environ.get("EMOEDGE_REQUIRE_GPU", "") == "1"
# A gpu test that skips with a reason starting so does not apply to this machine's versions (not a missing GPU).
NOT_APPLICABLE = "not applicable here: "
