"""ROUTER_* variables that name no setting are reported, with the closest setting."""

from __future__ import annotations

from router.settings import unknown_variables


def test_a_misspelled_setting_is_reported_with_the_one_it_resembles() -> None:
    environ = {"ROUTER_SIPPORT": "5060", "ROUTER_SIP_PORT": "5060", "HOME": "/"}
    assert unknown_variables(environ) == [
        "ROUTER_SIPPORT (did you mean ROUTER_SIP_PORT?)"
    ]


def test_the_config_file_and_the_api_client_variables_are_not_reported() -> None:
    environ = {
        name: "x" for name in ("ROUTER_CONFIG", "ROUTER_API_URL", "ROUTER_API_KEY")
    }
    assert unknown_variables(environ) == []


def test_a_variable_like_no_setting_is_reported_alone() -> None:
    assert unknown_variables({"ROUTER_ZZZ": "1"}) == ["ROUTER_ZZZ"]
