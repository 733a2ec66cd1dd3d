"""Result folders never lose a user's file: the marker lists what ilsim wrote; an earlier result that holds
anything else is refused, or replaced with --overwrite keeping those files."""

import json

import pytest

import ilsim
from ilsim.errors import IlsimError
from ilsim.io.results import MARKER, atomic_folder, check_out, extra_files, written_files


def write(out, files: dict[str, str], overwrite: bool = False) -> None:
    with atomic_folder(out, overwrite) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def contents(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file() and p.name != MARKER}


def test_the_marker_lists_the_files_written_and_a_clean_result_is_replaced(tmp_path):
    out = tmp_path / "r"
    write(out, {"a.txt": "1", "figures/f.png": "png"})
    assert written_files(out) == {"a.txt", "figures/f.png"} and extra_files(out) == []
    write(out, {"b.txt": "2"})  # nothing but ilsim's files: replaced whole, the old files gone
    assert contents(out) == {"b.txt": "2"}


def test_a_user_file_stops_the_replacement_and_overwrite_keeps_it(tmp_path):
    out = tmp_path / "r"
    write(out, {"a.txt": "1", "figures/f.png": "old"})
    (out / "notes.md").write_text("my notes")
    (out / "figures" / "mine.svg").write_text("my figure")
    with pytest.raises(IlsimError, match=r"holds files ilsim did not write \(figures/mine.svg, notes.md\).*overwrite"):
        check_out(out)
    with pytest.raises(IlsimError, match="notes.md"):
        write(out, {"a.txt": "2"})
    assert contents(out) == {"a.txt": "1", "figures/f.png": "old", "notes.md": "my notes", "figures/mine.svg": "my figure"}
    write(out, {"a.txt": "2"}, overwrite=True)  # ilsim's files replaced (figures/f.png was ilsim's: gone), the user's kept
    assert contents(out) == {"a.txt": "2", "notes.md": "my notes", "figures/mine.svg": "my figure"}
    assert written_files(out) == {"a.txt"}  # the kept files stay the user's: the next run must ask again
    with pytest.raises(IlsimError, match="notes.md"):
        check_out(out)


def test_a_file_added_while_a_run_writes_stops_the_swap(tmp_path):
    out = tmp_path / "r"
    write(out, {"a.txt": "1"})
    with pytest.raises(IlsimError, match="late.txt"), atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("2")
        (out / "late.txt").write_text("written during the run")
    assert contents(out) == {"a.txt": "1", "late.txt": "written during the run"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left


def test_a_user_file_where_the_new_result_writes_is_never_replaced(tmp_path):
    out = tmp_path / "r"
    write(out, {"a.txt": "1"})
    (out / "b.txt").write_text("the user's b")
    with pytest.raises(IlsimError, match="writes b.txt"):
        write(out, {"a.txt": "2", "b.txt": "ilsim's b"}, overwrite=True)
    assert contents(out) == {"a.txt": "1", "b.txt": "the user's b"}


def test_a_result_of_an_ilsim_before_the_lists_is_kept_whole_unless_overwrite(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / MARKER).write_text("ilsim 0.1.0\n")
    (out / "results.nc").write_text("old")
    with pytest.raises(IlsimError, match="did not list its files"):
        check_out(out)
    write(out, {"summary.json": "{}"}, overwrite=True)
    assert contents(out) == {"summary.json": "{}", "results.nc": "old"}  # nothing it could not tell apart is lost


def test_ilsim_run_refuses_a_result_folder_with_notes_and_keeps_them_with_overwrite(cli, tmp_path):
    out = tmp_path / "kp"
    assert cli("run", "kirschner-panetta-1998", "--out", out, "--t-end", "5", "--no-report").exit_code == 0
    (out / "notes.txt").write_text("c = 0.025 looks like the paper's Fig. 3")
    result = cli("run", "kirschner-panetta-1998", "--out", out, "--t-end", "7", "--no-report")
    assert result.exit_code == 2 and "notes.txt" in result.output and "--overwrite" in result.output
    assert "Traceback" not in result.output
    assert json.loads((out / "summary.json").read_text())["t_end"] == 5
    result = cli("run", "kirschner-panetta-1998", "--out", out, "--t-end", "7", "--no-report", "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["t_end"] == 7
    assert (out / "notes.txt").read_text() == "c = 0.025 looks like the paper's Fig. 3"


def test_compare_keeps_an_analysis_script(tmp_path):
    out = tmp_path / "cmp"
    variants = {"intact": {}, "stop-ignored": {"stop-ignored": 1.0}}
    ilsim.compare("infection-resolution", variants, out, t_end=5, points=51)
    (out / "plot.py").write_text("import xarray\n")
    with pytest.raises(IlsimError, match=r"plot.py.*overwrite"):
        ilsim.compare("infection-resolution", variants, out, t_end=5, points=51)
    ilsim.compare("infection-resolution", variants, out, t_end=6, points=51, overwrite=True)
    assert (out / "plot.py").read_text() == "import xarray\n" and (out / "compare.csv").is_file()


def test_python_callers_see_the_argument_name_and_the_cli_its_option(tmp_path, cli):
    out = tmp_path / "r"
    write(out, {"a.txt": "1"})
    (out / "mine.txt").write_text("x")
    with pytest.raises(IlsimError) as info:
        ilsim.run("kirschner-panetta-1998", out, t_end=1)
    assert "give overwrite" in str(info.value) and "--overwrite" not in str(info.value)
    result = cli("run", "kirschner-panetta-1998", "--out", out, "--t-end", "1")
    assert result.exit_code == 2 and "give --overwrite" in result.output


def test_overwrite_replaces_the_files_an_earlier_ilsim_wrote_under_the_same_names(tmp_path):
    """A folder from an ilsim before the lists, written again with --overwrite: the new result's files win, the
    others stay (before the mend this was a dead end: refused without --overwrite, a clash with it)."""
    out = tmp_path / "r"
    out.mkdir()
    (out / MARKER).write_text("ilsim 0.1.0\n")
    (out / "results.nc").write_text("old")
    (out / "notes.txt").write_text("mine")
    write(out, {"results.nc": "new"}, overwrite=True)
    assert contents(out) == {"results.nc": "new", "notes.txt": "mine"}
