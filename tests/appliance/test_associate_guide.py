"""The associates' quick reference stays true and stays one printable page."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from edge.api.problems import STATUS
from edge.api.refunds import REFUND_PROBLEMS
from edge.settings import Settings

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "associate-guide.md"
# What an associate meets at the register: refusals of a refund or a look-up, and the one
# a sale can get when its payments are keyed in.
ASSOCIATE_SLUGS = {
    "approval-required",
    "approval-locked",
    "offline-limit-exceeded",
    "return-window-expired",
    "final-sale",
    "quantity-exceeds-returnable",
    "tender-mismatch",
    "hq-unreachable",
    "storage-unavailable",
    "not-found",
    "validation-failed",
}
# Refusals the register's software handles by itself: an associate never sees them.
REGISTER_PLUMBING = {
    "idempotency-key-missing",
    "idempotency-key-reused",
    "idempotency-key-in-flight",
}
# One A4 or Letter page at 10 pt (checked by printing it with Chromium: 53 lines fill ~90%).
MAX_LINES = 56
MAX_WIDTH = 100


def test_every_refusal_an_associate_can_meet_is_explained_by_its_title() -> None:
    text = GUIDE.read_text()
    assert set(REFUND_PROBLEMS) - REGISTER_PLUMBING <= ASSOCIATE_SLUGS, "a new refusal"
    for slug in sorted(ASSOCIATE_SLUGS):
        title = STATUS[slug][1]
        assert f"**{title}** (`{slug}`): " in text, f"the guide does not explain {slug}"


def test_the_guide_covers_the_training_steps() -> None:
    headings = re.findall(r"^## (.+)$", GUIDE.read_text(), re.MULTILINE)
    assert headings == [
        "1. Scan the receipt",
        "2. Check what can be returned",
        "3. Refund",
        "4. When a manager is needed",
        "5. When head office is offline",
        "What the register's messages mean",
    ]


def test_the_numbers_in_the_guide_are_the_shipped_defaults() -> None:
    text = GUIDE.read_text()
    defaults = Settings()
    assert f"*{defaults.refunds.return_window_days} days*" in text
    assert f"*${defaults.refunds.approval_threshold['USD']:.0f}*" in text
    assert f"*${defaults.offline.max_card_refund['USD']:.0f}*" in text
    assert f"*{defaults.managers.max_pin_failures}* wrong PINs" in text
    assert f"*{Decimal(defaults.managers.lockout_s) / 60:.0f} minutes*" in text


def test_the_guide_fits_on_one_printed_page() -> None:
    lines = GUIDE.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"{len(lines)} lines: keep it to one page"
    assert not [line for line in lines if len(line) > MAX_WIDTH]
