"""Files of a cohort run: the work folder of finished chunks, and the final output assembled from it.

Work folder ``OUT.partial/`` (beside the output): ``manifest.json`` (the settings that decide the
results) and, per finished chunk, ``chunk-000007.parquet`` (its summary rows, with a creation record
in the file's metadata) and, when trajectories are kept, ``chunk-000007.npy`` (patients x times x
variables). Every file is written to a temporary name, flushed to disk and renamed, so after a
``kill -9`` a chunk file is either complete or absent; the ``.parquet`` file is renamed last, so it
marks a finished chunk.

Final output (assembled inside ``io.results.atomic_folder``): ``summary.parquet`` streamed chunk by
chunk (one row group per chunk, never the whole cohort in memory) and ``trajectories.zarr`` written
one chunk at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ilsim.errors import IlsimError
from ilsim.model.outcomes import NO_OUTCOME  # noqa: F401 - defined beside the other outcome labels; importable here

MANIFEST = "manifest.json"
_CHUNK = re.compile(r"^chunk-(\d{6,})\.parquet$")
LISTED_FAILURES = 1000  # cohort.json lists at most this many failed patients (all are in summary.parquet)


def work_folder(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def chunk_file(work: Path, index: int, suffix: str = ".parquet") -> Path:
    return work / f"chunk-{index:06d}{suffix}"


def _replace_atomically(write, path: Path) -> None:
    """Write through ``write(tmp_path)``, flush to disk and rename onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------ work folder


def read_manifest(work: Path) -> dict | None:
    """The manifest of an unfinished run in ``work``; None when there is no work folder."""
    if not work.exists():
        return None
    path = work / MANIFEST
    if not work.is_dir() or not path.is_file():
        raise IlsimError(f"{work}: exists and is not the work folder of an ilsim cohort run (no {MANIFEST}); "
                         "remove it or choose another --out")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IlsimError(f"{path}: cannot be read ({exc}); remove {work} to start the cohort afresh") from None


def create_work(work: Path, manifest: dict) -> None:
    """Create the work folder with its manifest in one step (a folder without a manifest never appears)."""
    try:
        work.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{work.name}.", dir=work.parent))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, work)
    except OSError as exc:
        raise IlsimError(f"{work}: cannot create the cohort's work folder: {exc.strerror or exc}") from None


def finished_chunks(work: Path, count: int, trajectories: bool) -> list[int]:
    """Indices of the chunks already written (removing temporary files a killed run left behind)."""
    done = []
    for path in work.iterdir():
        if path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
            continue
        match = _CHUNK.match(path.name)
        index = int(match.group(1)) if match else -1
        if 0 <= index < count and (not trajectories or chunk_file(work, index, ".npy").is_file()):
            done.append(index)
    return sorted(done)


def write_chunk(work: Path, index: int, frame: pd.DataFrame, trajectories: np.ndarray | None, record: dict) -> None:
    """Save one finished chunk: trajectories first, then the summary rows (whose file marks the chunk done)."""
    import pyarrow as pa  # lazy: heavy (pyarrow)
    import pyarrow.parquet as pq  # lazy: heavy (pyarrow)

    def save_array(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: np.save would add ".npy" to a name
            np.save(handle, trajectories)

    if trajectories is not None:
        _replace_atomically(save_array, chunk_file(work, index, ".npy"))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"ilsim_chunk": json.dumps(record).encode()})
    _replace_atomically(lambda tmp: pq.write_table(table, tmp), chunk_file(work, index))


def read_chunk(work: Path, index: int) -> pd.DataFrame:
    import pyarrow.parquet as pq  # lazy: heavy (pyarrow)

    return pq.read_table(chunk_file(work, index)).to_pandas()


def remove_work(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------ tallies


class Tally:
    """Outcome counts and failed patients, accumulated chunk by chunk."""

    def __init__(self) -> None:
        self.patients = 0
        self.outcomes: Counter = Counter()
        self.reasons: Counter = Counter()
        self.failed: list[dict] = []

    def add(self, frame: pd.DataFrame) -> None:
        self.patients += len(frame)
        labels = frame["outcome"].astype(str).replace("", NO_OUTCOME)
        self.outcomes.update(labels.value_counts().to_dict())
        bad = frame.loc[frame["status"].astype(str) != "ok", ["patient", "status"]]
        self.reasons.update(bad["status"].astype(str).value_counts().to_dict())
        room = LISTED_FAILURES - len(self.failed)
        self.failed += [{"patient": int(p), "reason": str(r)} for p, r in bad.head(max(room, 0)).itertuples(index=False)]

    def record(self) -> dict:
        n = max(self.patients, 1)
        return {
            "outcomes": {label: {"count": int(c), "fraction": c / n} for label, c in sorted(self.outcomes.items(),
                                                                                         key=lambda kv: -kv[1])},
            "failed": {"count": int(sum(self.reasons.values())), "by_reason": dict(self.reasons),
                       "patients": self.failed,
                       "listed": f"the first {LISTED_FAILURES} failed patients; summary.parquet has every one"
                       if sum(self.reasons.values()) > LISTED_FAILURES else "all"},
        }


# ------------------------------------------------------------------------------------ final output


def write_summary(work: Path, chunks: Iterable[int], path: Path, metadata: dict) -> Tally:
    """Stream every chunk's rows into one Parquet file (a row group per chunk); return the tally."""
    import pyarrow.parquet as pq  # lazy: heavy (pyarrow)

    tally = Tally()
    writer = None
    try:
        for index in chunks:
            table = pq.read_table(chunk_file(work, index))
            if writer is None:
                meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"ilsim_chunk"}
                meta[b"ilsim"] = json.dumps(metadata, sort_keys=True).encode()
                schema = table.schema.with_metadata(meta)
                writer = pq.ParquetWriter(path, schema)
            try:
                table = table.cast(schema)
            except (ValueError, TypeError) as exc:  # pyarrow.ArrowInvalid derives from ValueError
                raise IlsimError(f"{chunk_file(work, index)}: its columns differ from the first chunk's ({exc}); "
                                 f"remove {work} to run the cohort afresh") from None
            writer.write_table(table)
            tally.add(table.select(["patient", "status", "outcome"]).to_pandas())
    finally:
        if writer is not None:
            writer.close()
    return tally


def write_trajectories(work: Path, chunks: list[tuple[int, int, int]], path: Path, *, t: np.ndarray,
                       variables: list[dict], time_units: str, attrs: dict) -> None:
    """Write ``trajectories.zarr`` one chunk at a time: a variable per species and observable, dims
    (patient, time), chunked by the cohort's chunks, with the time coordinate and units."""
    import dask.array as da  # lazy: heavy (dask, xarray)
    import xarray as xr  # lazy: heavy

    n = chunks[-1][2]
    size = chunks[0][2] - chunks[0][1]
    template = xr.Dataset(
        {v["name"]: (("patient", "time"), da.zeros((n, len(t)), chunks=(size, len(t))),
                     {k: v[k] for k in ("units", "role", "description") if v.get(k)}) for v in variables},
        coords={"patient": ("patient", np.arange(n, dtype=np.int64)), "time": ("time", np.asarray(t), {"units": time_units})},
        attrs=attrs,
    )
    template.to_zarr(path, mode="w", compute=False, zarr_format=2, consolidated=True)
    for index, start, stop in chunks:
        Y = np.load(chunk_file(work, index, ".npy"), mmap_mode="r")
        if Y.shape != (stop - start, len(t), len(variables)):
            raise IlsimError(f"{chunk_file(work, index, '.npy')}: holds {Y.shape}, expected "
                             f"{(stop - start, len(t), len(variables))}; remove {work} to run the cohort afresh")
        part = xr.Dataset({v["name"]: (("patient", "time"), np.asarray(Y[:, :, j])) for j, v in enumerate(variables)})
        part.to_zarr(path, region={"patient": slice(start, stop), "time": slice(0, len(t))}, zarr_format=2,
                     consolidated=False)
        del Y
