"""The `full` profile of notebooks 04 and 05, offline: the same check as tests/test_full_profile.py, in a file of its
own so that pytest-xdist (one group per file) runs it beside the other notebooks' full runs, not after them."""
import pytest
from test_full_profile import NOTEBOOKS, check_full_run, hub_cache  # noqa: F401 (hub_cache: the fixture)


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n[:2] in ("04", "05")])
def test_full_profile_runs_offline(notebook, hub_cache, tmp_path):
    check_full_run(notebook, hub_cache, tmp_path)
