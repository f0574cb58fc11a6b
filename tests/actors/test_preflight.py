"""Checks before anything slow starts (a Ray address nothing answers at fails in seconds, saying what to change),
and how a failing step of stopping is told."""

from __future__ import annotations

import socket

import pytest

from actors.preflight import check_ray_reachable
from mkt_ray.embedded import free_port
from mkt_ray.errors import MktRayError


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_a_ray_address_nothing_listens_at_is_refused_at_once(form: str) -> None:
    address = form.format(port=free_port())
    with pytest.raises(MktRayError) as refused:
        check_ray_reachable(address)
    assert str(refused.value) == (f"cannot reach the Ray cluster at {address} (Connection refused): start it "
                                  "(`ray start --head`, `ray up cluster.yaml`) or fix ray_address (MKT_RAY_ADDRESS)")


@pytest.mark.parametrize("address", ["nonsense", "host:port", "ray://", "10.0.0.1:99999"])
def test_a_ray_address_that_is_not_one_is_refused(address: str) -> None:
    with pytest.raises(MktRayError, match=f"ray_address '{address}' is not host:port, ray://host:port, auto or local"):
        check_ray_reachable(address)


def test_a_listening_address_and_the_keywords_pass() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        check_ray_reachable(f"127.0.0.1:{server.getsockname()[1]}")
        check_ray_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}")
    check_ray_reachable("auto")
    check_ray_reachable("local")


def test_a_failing_stop_step_is_told_in_one_line_and_the_next_steps_run(capsys: pytest.CaptureFixture[str]) -> None:
    from actors.launcher import _quietly

    def died() -> None:
        raise RuntimeError("The actor died unexpectedly.\n\tactor_id: 1f2e\n\tpid: 42\n\nOwner's node has crashed.")

    ran = []
    _quietly(died)
    _quietly(lambda: ran.append(True))
    assert capsys.readouterr().err == ("mkt-ray: while stopping: RuntimeError: The actor died unexpectedly. ... "
                                       "Owner's node has crashed.\n")
    assert ran == [True]
