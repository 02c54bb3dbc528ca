"""A private mount namespace for a test's own mounts (a tmpfs data dir, a private /run).

`unshare --propagation private` fails inside a chroot, whose / is no mount point, as in the
CI root. So the namespace starts with the propagation unchanged and makes its copy of the
mounts private itself before mounting anything: / where it can, else /run; inside such a
chroot the enclosing namespace is private already, so nothing reaches the host either way.
"""

from __future__ import annotations

PRIVATE_MOUNTS = "{ mount --make-rprivate / || mount --make-rprivate /run; } 2>/dev/null; "


def in_private_mounts(script: str, *args: str) -> list[str]:
    """The command that runs the shell `script` (with `args` as $1...) in a mount namespace
    of its own, its mounts invisible to this one."""
    return ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c",
            PRIVATE_MOUNTS + script, "sh", *args]  # fmt: skip
