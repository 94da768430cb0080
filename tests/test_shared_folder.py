"""The ranks check at start that they share the run folder, and stop with the reason when not.

(The passing check runs in every 2-rank training test: tests/test_pretrain.py.)"""

import socket

import pytest

from lamm.launch import FAILURE_MARK, LaunchError, LaunchSettings, launch
from tests.helpers.distributed_targets import check_run_folders


@pytest.mark.slow
def test_ranks_on_folders_that_differ_stop_with_the_reason(tmp_path):
    """Rank 1 writes its marker where rank 0 does not look (as on a node-local disk)."""
    here, elsewhere = tmp_path / "run", tmp_path / "node2" / "run"
    with pytest.raises(LaunchError) as caught:
        launch(
            check_run_folders,
            {"folders": [str(here), str(elsewhere)], "timeout_s": 2.0},
            LaunchSettings(executor="local", ranks_per_node=2),
            folder=tmp_path / "jobs",
            poll_s=0.2,
        )
    host = socket.gethostname()
    message = str(caught.value)
    assert f"the run folder {here} is not shared: rank 0 on {host} did not see the markers" in (
        message
    )
    assert f"rank 1 on {host} wrote there within 2 s" in message and "docs/cluster.md" in message
    for log in sorted((tmp_path / "jobs").glob("*_log.err")):  # both ranks stopped with it
        assert log.read_text().count(FAILURE_MARK) == 1
