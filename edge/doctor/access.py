"""Who the gateway runs as, and whether that user may read or write a file.

`doctor` is often run by store IT with sudo, and root may open anything: what matters is
whether the gateway's own user can. That user is `--user`, else the owner of the data
directory (the service's state directory belongs to it), else whoever runs `doctor`.
For the user running `doctor` the kernel is asked (`os.access`); for another, the file's
mode bits are read against the user's uid and groups (ACLs are not read).
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def by_uid(cls, uid: int) -> ServiceUser:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(str(uid), uid, frozenset())
        return cls._of(entry)

    @classmethod
    def by_name(cls, name: str) -> ServiceUser:
        """Raises KeyError when there is no such user."""
        return cls._of(pwd.getpwnam(name))

    @classmethod
    def _of(cls, entry: pwd.struct_passwd) -> ServiceUser:
        groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
        return cls(entry.pw_name, entry.pw_uid, frozenset(groups))

    @classmethod
    def of_gateway(cls, name: str | None, data_dir: Path) -> ServiceUser:
        """`name`, else the data directory's owner, else the user running this."""
        if name:
            return cls.by_name(name)
        try:
            return cls.by_uid(data_dir.stat().st_uid)
        except OSError:
            return cls.by_uid(os.geteuid())


def can_access(user: ServiceUser, path: Path, *, write: bool = False) -> bool:
    """Whether `user` may read (and with `write`, also write) `path`."""
    if user.uid == os.geteuid():
        return os.access(path, os.R_OK | (os.W_OK if write else 0), effective_ids=True)
    if user.uid == 0:
        return path.exists()
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid == user.uid:
        bits = st.st_mode >> 6
    elif st.st_gid in user.gids:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    need = 0o4 | (0o2 if write else 0)
    return bits & need == need
