"""Atomic file output: write a hidden temporary beside the target, rename it on success (private).

The temporary is ``.<name>.<host>.<pid>.<random>.tmp`` in the target's directory (the
same file system, so the final :func:`os.replace` is atomic). ``host`` is a short hash
of this machine's name and ``pid`` the writing process. Every write first removes the
*stale* temporaries of its own target: those made on this host by a process that no
longer runs (a run killed by SIGKILL, a power cut). A temporary of a live process (another
writer, or another thread of this one), of another host (a shared file system: its
processes cannot be checked from here), or of any other target is never touched.

The temporary is created with mode ``0o666`` and the kernel applies the process umask,
as for any new file; the umask itself is never read or changed (changing it is
process-wide, a race with other threads).

>>> import tempfile, os
>>> from pathlib import Path
>>> d = tempfile.mkdtemp()
>>> p = atomic_write(os.path.join(d, "out.txt"), lambda tmp: Path(tmp).write_text("hi"))
>>> p.read_text(), os.listdir(d)
('hi', ['out.txt'])
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "stale_temporaries", "temporary_name"]

_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()
# Room for ".<host>.<pid>.<random>.tmp" within the usual 255-byte name limit.
_NAME_ROOM = 180


def temporary_name(target: Path) -> str:
    """A fresh temporary name for ``target`` (random part from the OS: names need not repeat)."""
    return f".{target.name[:_NAME_ROOM]}.{_HOST}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def stale_temporaries(target: Path) -> list[Path]:
    """Temporaries of ``target`` left by dead processes of this host."""
    pattern = re.compile(re.escape(f".{target.name[:_NAME_ROOM]}.{_HOST}.") + r"(\d+)\.[0-9a-f]{12}\.tmp")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return [target.parent / n for n in names if (m := pattern.fullmatch(n)) and not _alive(int(m.group(1)))]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists (another user's), or cannot tell: keep the file
    return True


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Run ``write(tmp_path)`` then rename onto ``path``; on any error remove the temporary.

    Errors of the file system name ``path``, not the temporary.
    """
    target = Path(path).expanduser()
    if not target.parent.exists():
        raise ValueError(f"output directory does not exist: {str(target.parent)!r}")
    for stale in stale_temporaries(target):
        try:
            stale.unlink()
        except FileNotFoundError:  # another run cleaned it first
            pass
        except OSError as exc:
            raise _renamed(exc, stale, target) from None
    while True:
        tmp = target.parent / temporary_name(target)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # 48 random bits collided: draw again
            continue
        except OSError as exc:
            raise _renamed(exc, tmp, target) from None
    try:
        write(str(tmp))
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        # An OSError about no file (a failed write: ENOSPC, EFBIG) or the temporary is about
        # the target; one naming another file (an input) is left as it is.
        if isinstance(exc, OSError) and (exc.filename in (None, str(tmp)) or str(tmp) in str(exc)):
            raise _renamed(exc, tmp, target) from exc
        raise
    return target


def _renamed(exc: OSError, tmp: Path, target: Path) -> OSError:
    """The same error about ``target``: the temporary is an implementation detail.

    ``OSError(errno, ...)`` builds the matching subclass (``PermissionError`` ...).
    """
    reason = exc.strerror or str(exc).replace(str(tmp), str(target))
    return OSError(exc.errno if exc.errno is not None else errno.EIO, reason, str(target))
