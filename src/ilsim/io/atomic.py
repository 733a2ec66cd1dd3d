"""Writing a file or a result folder completely or not at all, and cleaning up after a killed writer.

Everything is written under a temporary name beside the target and renamed onto it when complete.
The temporary names carry an owner tag, ``.NAME.PID-RANDOM.SUFFIX``:

- ``.NAME.TAG.lock``: a file the writer holds an exclusive lock on (``fcntl.flock``) for as long as it
  writes; the kernel releases the lock when the process dies, even by ``kill -9``;
- ``.NAME.TAG.partial`` (a folder) or ``.NAME.TAG.tmp`` (a file): what is being written;
- ``.NAME.TAG.old``: an earlier result folder, moved aside during the swap and removed after it.

A later writer of the same target first calls ``recover(target)``: for every tag whose lock it can
take (so no live process owns it; without a lock file, whose PID is not running) it finishes what the
killed writer left. A killed swap is undone: an earlier result found only under ``.old`` is put back
when the target is missing, and removed when the target holds an ilsim result again. Temporary
files and folders are removed, then the lock file. Nothing that does not match this naming exactly,
beside this target, is ever touched.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from contextlib import contextmanager, suppress
from pathlib import Path

from ilsim.errors import IlsimError, argument

try:
    import fcntl
except ImportError:  # Windows: ownership falls back to the PID in the name
    fcntl = None

SUFFIXES = ("partial", "tmp", "old", "lock")


def _pattern(target: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(target.name)}\.(\d+)-([0-9a-f]{{8}})\.({'|'.join(SUFFIXES)})$")


def sibling(target: Path, tag: str, suffix: str) -> Path:
    return target.with_name(f".{target.name}.{tag}.{suffix}")


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our PID in a tag we do not hold: a process before us had the same PID (callers skip ours)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists (owned by another user) or we cannot tell: assume it is alive
        return True
    return True


_held: set[str] = set()  # tags of the claims this process holds now


class _Claim:
    """A writer's claim on a target: a lock file held for the claim's lifetime."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.lock = sibling(target, self.tag, "lock")
        self._fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if fcntl is not None:
            with suppress(OSError):  # no locks on this file system: cleaners cannot take it either, so never clean up
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        _held.add(self.tag)

    def path(self, suffix: str) -> Path:
        return sibling(self.target, self.tag, suffix)

    def release(self) -> None:
        with suppress(OSError):
            self.lock.unlink()
        os.close(self._fd)
        _held.discard(self.tag)


@contextmanager
def _dead_owner(lock: Path, pid: int):
    """Yield True while holding a dead writer's lock (the caller may then clean up), False if it lives."""
    if fcntl is None or not lock.exists():
        yield not _pid_running(pid)
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        yield not lock.exists() and not _pid_running(pid)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its writer is alive (or locks are not supported here; then never clean up)
            yield False
            return
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino  # not a lock file another cleaner just removed
        except OSError:
            same = False
        yield same
    finally:
        os.close(fd)


def recover(target: str | Path, is_result: Callable[[Path], bool] = lambda p: False) -> list[Path]:
    """Finish what killed writers of ``target`` left beside it; return the paths removed or restored.

    ``is_result(path)`` says whether a folder is a complete result (an earlier one moved aside is
    removed only once the target is one again; otherwise it is put back or left alone).
    """
    target = Path(target)
    parent = target.parent
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    pattern = _pattern(target)
    tags: dict[str, int] = {}
    for name in names:
        match = pattern.match(name)
        if match:
            tags[f"{match.group(1)}-{match.group(2)}"] = int(match.group(1))
    touched: list[Path] = []
    for tag, pid in sorted(tags.items()):
        if tag in _held:
            continue
        lock = sibling(target, tag, "lock")
        with _dead_owner(lock, pid) as dead, suppress(OSError):  # best effort: a name we cannot touch stays
            if not dead:
                continue
            old = sibling(target, tag, "old")
            kept = False
            if old.is_dir() and not old.is_symlink():
                if not target.exists():
                    os.replace(old, target)  # killed between the two renames: the earlier result comes back
                    touched.append(target)
                elif is_result(target):
                    shutil.rmtree(old, ignore_errors=True)  # killed after the swap, while removing the earlier result
                    touched.append(old)
                else:
                    kept = True  # something else stands at the target now: leave both as they are
            for suffix in ("partial", "tmp"):
                path = sibling(target, tag, suffix)
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                    touched.append(path)
                elif path.exists() or path.is_symlink():
                    path.unlink(missing_ok=True)
                    touched.append(path)
            if not kept and lock.exists():
                lock.unlink(missing_ok=True)
                touched.append(lock)
    return touched


def check_new_file(path: str | Path, *, overwrite: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work, an output file that exists (unless ``overwrite``) or is one of ``inputs``
    (never, whatever ``overwrite`` says: a failed or partial conversion must not cost the user the file)."""
    path = Path(path)
    for source in inputs:
        if _same_file(path, Path(source)):
            raise IlsimError(f"{path}: is the input file {source}; writing it would destroy the input: choose another "
                             "output file")
    if path.is_dir():
        raise IlsimError(f"cannot write {path}: it is a folder")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise IlsimError(f"{path}: exists; give {argument('overwrite')} to replace it, or choose another output file")
    if not path.parent.is_dir():
        raise IlsimError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # also through links
    except OSError:
        return a.resolve() == b.resolve()  # the output does not exist yet


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path``; when the block ends without an error it is renamed onto
    ``path`` (replacing it), otherwise removed. Stale temporary files of killed writers are removed first."""
    path = Path(path)
    recover(path)
    claim = _Claim(path)
    tmp = claim.path("tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with suppress(OSError):
            tmp.unlink()
        claim.release()


@contextmanager
def swap_folder(target: Path, seal: Callable[[Path], None]):
    """Yield an empty temporary folder beside ``target``; when the block ends without an error, call
    ``seal(folder)`` and put the folder in the target's place (an earlier folder is moved aside to
    ``.old`` first, put back if the second rename fails, and removed after it). On any error the
    temporary folder is removed and the target left as it was."""
    claim = _Claim(target)
    try:
        tmp = claim.path("partial")
        os.mkdir(tmp)
    except BaseException:
        claim.release()
        raise
    try:
        yield tmp
        seal(tmp)
        old = None
        if target.exists():
            old = claim.path("old")
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)  # put the earlier result back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        claim.release()
