"""Which new manager PINs are accepted.

A PIN guards refunds at a counter where anyone can watch or guess, and a wrong guess
costs only a lockout; so a new PIN must be at least six digits and not one of the
first an attacker tries. The approval path accepts any PIN of 4 to 12 digits, so
managers whose PINs were set under the old 4-digit minimum keep working until their
PIN is changed; every PIN accepted here fits that range.
"""

from __future__ import annotations

from itertools import pairwise

NEW_PIN_MIN_DIGITS = 6
PIN_MAX_DIGITS = 12

# The most used PINs of six digits or more in published password and PIN leaks that the
# rules below (one digit, straight runs, a 2- or 3-digit group repeated) do not catch.
COMMON_PINS = frozenset(
    {
        "102030",
        "112233",
        "121314",
        "123321",
        "123654",
        "147258",
        "147852",
        "159357",
        "159753",
        "159951",
        "258456",
        "456123",
        "520520",
        "654123",
        "741852",
        "753951",
        "789456",
        "852456",
        "963852",
        "123654789",
        "147258369",
    }
)


def new_pin_problem(pin: str) -> str | None:
    """Why `pin` may not become a manager's PIN, in one line; None when it may."""
    if not pin.isascii() or not pin.isdigit():
        return "a PIN is digits only"
    if not NEW_PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS:
        return f"a PIN is {NEW_PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits"
    if len(set(pin)) == 1:
        return "a PIN of one repeated digit is too easy to guess"
    steps = {(int(b) - int(a)) % 10 for a, b in pairwise(pin)}
    if steps in ({1}, {9}):
        return "a straight run of digits (such as 123456 or 987654) is too easy to guess"
    for size in (2, 3):
        if len(pin) % size == 0 and pin == pin[:size] * (len(pin) // size):
            return "a short group of digits repeated (such as 121212) is too easy to guess"
    if pin in COMMON_PINS:
        return "this PIN is among the most common ones; choose another"
    return None
