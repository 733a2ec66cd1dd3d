"""Result folders and files survive a kill at any moment: afterwards the target holds the complete earlier
or the complete new content, never nothing, and the next write removes every temporary name it left.

Crashes are real: a forked child writes and dies by ``os._exit`` at a chosen rename, or by SIGKILL at a
random moment, so no ``finally`` runs; the oracle is the invariant itself, checked file by file.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ilsim.errors import IlsimError
from ilsim.io import atomic
from ilsim.io.results import MARKER, atomic_folder, check_out

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills need fork")


def write_gen(out: Path, n: int) -> None:
    """A result of generation n: two files that must agree, and the marker."""
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text(f"gen {n}\n")
        (tmp / "b.txt").write_text(f"gen {n}\n" * 2000)  # big enough that a kill can land inside a write


def generation(out: Path) -> int | None:
    """The generation of a complete result in ``out``; None when it is missing or incomplete."""
    if not out.is_dir() or sorted(p.name for p in out.iterdir()) != sorted([MARKER, "a.txt", "b.txt"]):
        return None
    a, b = (out / "a.txt").read_text(), (out / "b.txt").read_text()
    n = int(a.split()[1])
    return n if b == f"gen {n}\n" * 2000 else None


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def in_child(body) -> int:
    """Run ``body()`` in a forked child that ends by os._exit (no cleanup runs); return its exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            body()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


def crash_at(call: int, after: bool):
    """Patch os.replace so that the process dies just before (or just after) its ``call``-th rename."""
    real = os.replace
    count = [0]

    def replace(src, dst):
        count[0] += 1
        if count[0] == call and not after:
            os._exit(9)
        real(src, dst)
        if count[0] == call and after:
            os._exit(9)

    os.replace = replace


@pytest.mark.parametrize(("call", "after", "expected"), [
    (1, False, 1),  # before the earlier result is moved aside
    (1, True, 1),  # between the two renames: the target is absent, the earlier result only in .old
    (2, True, 2),  # after the swap, before .old is removed
])
def test_a_kill_at_each_rename_leaves_the_old_or_the_new_result(tmp_path, call, after, expected):
    out = tmp_path / "res"
    write_gen(out, 1)

    def killed_write():
        crash_at(call, after)
        write_gen(out, 2)

    assert os.WEXITSTATUS(in_child(killed_write)) == 9
    assert leftovers(out), "the kill left temporary names (else this test exercises nothing)"
    if (call, after) == (1, True):
        assert not out.exists()  # the window issue 19 found
    check_out(out)  # what the next run does first
    assert generation(out) == expected
    assert leftovers(out) == []
    write_gen(out, 3)
    assert generation(out) == 3 and leftovers(out) == []


def test_a_kill_while_the_earlier_result_is_being_removed(tmp_path):
    out = tmp_path / "res"
    write_gen(out, 1)

    def killed_write():
        real = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            (Path(path) / "a.txt").unlink()  # half removed
            os._exit(9)

        atomic.shutil.rmtree = rmtree
        try:
            write_gen(out, 2)
        finally:
            atomic.shutil.rmtree = real

    assert os.WEXITSTATUS(in_child(killed_write)) == 9
    assert any(name.endswith(".old") for name in leftovers(out))
    check_out(out)
    assert generation(out) == 2 and leftovers(out) == []


@pytest.mark.parametrize("call", [1, 2])
def test_a_failed_rename_puts_the_earlier_result_back(tmp_path, monkeypatch, call):
    out = tmp_path / "res"
    write_gen(out, 1)
    real = os.replace
    count = [0]

    def replace(src, dst):
        count[0] += 1
        if count[0] == call:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        write_gen(out, 2)
    monkeypatch.undo()
    assert generation(out) == 1 and leftovers(out) == []


def test_sigkill_at_random_moments_never_loses_the_result(tmp_path):
    """A child rewrites the folder in a loop and is killed at a random moment, 60 times."""
    out = tmp_path / "res"
    write_gen(out, 0)
    rng = random.Random(18)
    seen_absent = with_litter = 0
    last = 0
    for _ in range(60):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child writes until it is killed
            n = last + 1
            while True:
                write_gen(out, n)
                n += 1
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        seen_absent += not out.exists()
        with_litter += bool(leftovers(out))
        check_out(out)
        last = generation(out)
        assert last is not None, "the folder must hold a complete result after recovery"
        assert leftovers(out) == []
    assert with_litter > 0, "no kill left anything behind: the test exercised no recovery"
    print(f"{with_litter} of 60 kills left temporary names, {seen_absent} landed between the two renames")


def test_recovery_touches_only_its_own_dead_names(tmp_path):
    out = tmp_path / "res"
    write_gen(out, 1)
    decoys = [".res.partial", "res.partial", ".res.123.old", ".res.1-abcdef12.partialx", ".other.1-abcdef12.partial",
              ".res.1-ABCDEF12.partial", ".res.x-abcdef12.partial"]
    for name in decoys:
        (tmp_path / name).mkdir()
    # a live writer in another process, holding its lock, and a lock-less name of a live PID
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        with atomic.swap_folder(out, lambda folder: (folder / MARKER).write_text("x")):
            os.write(ready_w, b"1")
            os.read(go_r, 1)
        os._exit(0)
    os.read(ready_r, 1)
    live = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".res.{pid}-")]
    assert sorted(Path(n).suffix for n in live) == [".lock", ".partial"]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".res.{sleeper.pid}-0badf00d.partial").mkdir()  # no lock file: its PID runs
        (tmp_path / f".res.{os.getpid()}-deadbeef.partial").mkdir()  # our PID, not our tag: a dead process's
        check_out(out)
        names = set(leftovers(out))
        assert set(decoys) | set(live) | {f".res.{sleeper.pid}-0badf00d.partial"} == names
        assert generation(out) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
        os.write(go_w, b"1")
        os.waitpid(pid, 0)
    check_out(out)
    assert set(leftovers(out)) == set(decoys)  # the live writer finished and cleaned up; the dead PID's folder went


def test_an_earlier_result_is_not_removed_when_something_else_took_its_place(tmp_path):
    out = tmp_path / "res"
    write_gen(out, 1)

    def killed_write():
        crash_at(1, True)
        write_gen(out, 2)

    in_child(killed_write)
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    with pytest.raises(IlsimError, match="not an ilsim result folder"):
        check_out(out)
    assert (out / "mine.txt").read_text() == "a user's file"
    old = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
    assert len(old) == 1 and generation(old[0]) == 1  # kept, for the user to decide


def test_a_killed_ilsim_run_is_cleaned_up_by_the_next(tmp_path):
    """The real command, killed with SIGKILL at random moments while it writes; the next run tidies up."""
    model = Path(__file__).parents[2] / "examples" / "il2-treg.yaml"
    out = tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    command = [sys.executable, "-m", "ilsim", "run", str(model), "--out", str(out), "--t-end", "5", "--points", "11"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    rng = random.Random(19)
    for _ in range(3):
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        check_out(out)
        assert (out / MARKER).is_file() and (out / "summary.json").is_file() and leftovers(out) == []
    subprocess.run(command, env=env, check=True, capture_output=True)
    assert leftovers(out) == []
