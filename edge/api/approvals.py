"""Manager approval: a PIN (slow hash, audited, locked after repeated failures) or a
single-use grant from a badge tap on the lane's NFC reader, good for a refund on that lane.
"""

from __future__ import annotations

from edge.api.context import ApiContext
from edge.api.pin_check import check_pin
from edge.api.schemas import ApprovalIn
from edge.domain.errors import ApprovalRequired


async def approve(
    ctx: ApiContext,
    approval: ApprovalIn,
    actor: str,
    register_id: str | None,
    client_lane: str | None = None,
) -> str:
    """The approving manager's id; raises approval-required when the approval is not good.

    `client_lane` is the lane a lane-bound client serves (None: not bound).
    """
    if approval.grant is not None:
        return _redeem_grant(ctx, approval.grant, register_id, client_lane)
    assert approval.manager_id is not None
    assert approval.pin is not None
    return await check_pin(ctx, approval.manager_id, approval.pin, actor)


def _redeem_grant(
    ctx: ApiContext, grant: str, register_id: str | None, client_lane: str | None
) -> str:
    """Redeem a badge grant for a refund on its lane.

    A grant is a bearer token that reached only its lane's registers, so a refund may carry
    it without naming a register; a `register_id` that is sent, and a lane-bound client's
    lane, must both be the grant's lane. A refusal does not use the grant up.
    """
    grants = ctx.grants
    lane = grants.lane_of(grant) if grants is not None else None
    if grants is None or lane is None:
        raise ApprovalRequired(
            "the badge approval is unknown, already used or expired; tap the badge again",
            "approval.grant",
        )
    if register_id is not None and register_id != lane:
        raise ApprovalRequired(
            f"the badge approval was given on another lane than register {register_id}",
            "register_id",
        )
    if client_lane is not None and client_lane != lane:
        raise ApprovalRequired(
            f"this client serves lane {client_lane}; the badge approval was given on another lane",
            "approval.grant",
        )
    manager = grants.redeem(grant, lane)
    if manager is None:  # not expected: nothing awaits between lane_of and redeem
        raise ApprovalRequired("the badge approval is no longer valid", "approval.grant")
    return manager
