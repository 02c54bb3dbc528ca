"""The rule for new manager PINs, and its fit with what the approval path accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.api.schemas import ApprovalIn
from edge.domain.pins import COMMON_PINS, new_pin_problem


@pytest.mark.parametrize("pin", ["482913", "90817263", "271828182845", "135792", "908172"])
def test_ordinary_pins_of_6_to_12_digits_are_accepted(pin: str) -> None:
    assert new_pin_problem(pin) is None


@pytest.mark.parametrize(
    "pin",
    [
        "48291",
        "4829131234567",
        "\uff14\uff18\uff12\uff19\uff11\uff13",  # full-width digits: str.isdigit, not a keypad
        "48291a",
        "000000",
        "999999999",
        "123456",
        "345678",
        "901234",
        "654321",
        "210987",
        "0123456789",
        "101010",
        "456456",
        *sorted(COMMON_PINS),
    ],
)
def test_short_odd_and_weak_pins_are_refused(pin: str) -> None:
    assert new_pin_problem(pin) is not None


@given(st.text(alphabet="0123456789", min_size=1, max_size=14))
def test_every_pin_a_manager_can_be_given_is_one_the_approval_path_accepts(pin: str) -> None:
    if new_pin_problem(pin) is None:
        approval = ApprovalIn.model_validate({"manager_id": "m-1", "pin": pin})
        assert approval.pin == pin
