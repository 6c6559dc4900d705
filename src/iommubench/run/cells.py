"""What a stored value may be: one check for the writer, --resume and the reader.

The writer never writes NaN or an infinity (store.format_cell leaves such a value empty), and
every number it writes is a count, a time, a rate or a share: finite, at least 0 and below
2**64 (the native counters are 64-bit). --resume refuses a points.csv cell that breaks this,
naming its line; the reader (analysis/run_reader.py) sets the row aside and says so. A
repetition's npz (hist/) holds the merged histograms and the throughput series in the shapes
`repetition_problem` checks; a file that cannot be read or is not in them is damaged.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from iommubench.core import hist
from iommubench.spec.columns import BOOLEAN_COLUMNS, PARAMETERS, TEXT_COLUMNS

MAX_VALUE = float(2**64)  # above any 64-bit counter, rate or time the harness writes
BOOLEANS = ("True", "False")
INTEGER_COLUMNS = {"point", "rep"}
STATUSES = ("ok", "failed")
NAN_PROBLEM = "is not a number (NaN)"
ZIP_MAGIC = b"PK\x03\x04"  # an npz is a zip archive of .npy files


class DamagedFileError(ValueError):
    """A repetition's npz that cannot be read or is not what the writer writes: one line
    naming the file."""


def number_problem(text: str) -> str | None:
    """Why `text` is not a number the writer could have written, or None."""
    try:
        value = float(text)
    except ValueError:
        return "is not a number"
    if math.isnan(value):
        return NAN_PROBLEM
    if not 0 <= value < MAX_VALUE:
        return "is out of range (a finite value from 0 to 2**64)"
    return None


def field_problem(column: str, text: str) -> str | None:
    """Why one points.csv cell is not what the writer writes, or None. Parameters are not
    checked here: --resume compares them with the point's own values."""
    if column in TEXT_COLUMNS or column in PARAMETERS or text == "":
        return None
    if column in BOOLEAN_COLUMNS:
        return None if text in BOOLEANS else "is not True or False"
    if column in INTEGER_COLUMNS:
        return None if text.isdigit() else "is not a non-negative integer"
    return number_problem(text)


def _histogram_problem(name: str, a: np.ndarray) -> str | None:
    if a.shape != (hist.NBUCKETS,):
        return f"{name} has shape {a.shape}, expected ({hist.NBUCKETS},)"
    if a.dtype.kind not in "ui" or (a.dtype.kind == "i" and bool((a < 0).any())):
        return f"{name} is not a histogram of counts (dtype {a.dtype})"
    return None


def _series_problem(arrays: dict[str, np.ndarray]) -> str | None:
    have = [k for k in ("series_t_ns", "series_ops") if k in arrays]
    if not have:
        return None
    if len(have) == 1:
        return f"{have[0]} without its pair"
    t, ops = arrays["series_t_ns"], arrays["series_ops"]
    if t.ndim != 1 or ops.ndim != 2 or ops.shape[1] != t.shape[0]:
        return f"series_t_ns {t.shape} and series_ops {ops.shape} do not match"
    if t.dtype.kind not in "ui" or ops.dtype.kind not in "ui":
        return "the throughput series is not of counts"
    return None


def repetition_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """Why the arrays of one repetition's npz are not what the writer writes, or None."""
    for name in ("map", "unmap"):
        if name not in arrays:
            return f"no {name!r} histogram"
        problem = _histogram_problem(name, arrays[name])
        if problem:
            return problem
    return _series_problem(arrays)


def read_repetition(path: Path) -> dict[str, np.ndarray]:
    """Every array of one repetition's npz, checked; DamagedFileError names what is wrong."""
    try:
        with path.open("rb") as f:
            if f.read(4) != ZIP_MAGIC:
                raise ValueError("not an npz archive")
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("an array, not an npz archive of arrays")
        with z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        detail = str(exc).split("\n")[0][:120] or type(exc).__name__
        raise DamagedFileError(f"{path}: unreadable ({type(exc).__name__}: {detail})") from None
    problem = repetition_problem(arrays)
    if problem:
        raise DamagedFileError(f"{path}: {problem}")
    return arrays
