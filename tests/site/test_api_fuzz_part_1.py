"""The API fuzz, part 1 of tests.site.fuzz.runner.PARTS (every operation of the OpenAPI schema falls in one part)."""

from __future__ import annotations

import pytest

from tests.site.fuzz.runner import run_fuzz_part


@pytest.mark.timeout(900)
def test_no_generated_request_makes_a_server_error(tmp_path):
    run_fuzz_part(1, tmp_path)
