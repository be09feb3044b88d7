"""A file checked and read into a frame, or a PermanentError saying what is wrong with it."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass

import polars as pl

from jobcast.errors import PermanentError
from jobcast.registry import Upload

MAX_FILE_BYTES = 50 * 1_048_576
# what the schema is guessed from first; the whole file when that guess fails further down
INFER_SCHEMA_ROWS = 10_000
# what spreadsheets and data tools write for "no value"; an empty field is missing too
MISSING_MARKERS = ("NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A")
_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024
_SNIFF_ROWS = 50
# a text file has almost no control bytes besides tab and line breaks; a binary one has many
_BINARY_CONTROL_SHARE = 0.05
_TEXT_CONTROLS = frozenset(b"\t\n\r\f")


@dataclass(frozen=True, slots=True)
class Table:
    upload_id: str
    filename: str
    delimiter: str
    frame: pl.DataFrame


def decode_text(name: str, data: bytes) -> str:
    """The file as text, or a PermanentError saying why it is not a text file in UTF-8."""
    sample = data[:_SNIFF_CHARS]
    controls = sum(1 for b in sample if (b < 0x20 and b not in _TEXT_CONTROLS) or b == 0x7F)
    if b"\x00" in sample or controls > _BINARY_CONTROL_SHARE * len(sample):
        raise PermanentError(f"{name} is not a CSV file: it holds binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PermanentError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): "
            "save it as UTF-8 and upload it again"
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same number of fields, and most.

    Tried in the order , ; tab |, so a tie goes to the comma. When no candidate gives the
    first lines one shape, the one that splits the header most is kept, so that the error
    about the odd line speaks of the delimiter the file most likely uses.
    """
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS:
        sample = sample[: sample.rfind("\n") + 1] or sample  # no half line at the end
    best, best_rank = ",", (False, 1)
    for delimiter in _DELIMITERS:
        try:
            rows = [
                r
                for r in itertools.islice(
                    csv.reader(io.StringIO(sample), delimiter=delimiter), _SNIFF_ROWS
                )
                if r
            ]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        rank = (all(len(r) == len(rows[0]) for r in rows), len(rows[0]))
        if rank > best_rank:
            best, best_rank = delimiter, rank
    return best


def count_rows(name: str, text: str, delimiter: str, max_rows: int | None) -> int:
    """The number of data rows, after checking that each has as many fields as the header.

    Polars would fill a short line with nulls without a word; a visitor wants to hear which
    line is wrong. Blank lines are not rows.
    """
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader, [])
        rows = 0
        for row in reader:
            if not row or not any(row):
                continue
            if len(row) != len(header):
                raise PermanentError(
                    f"{name}: line {reader.line_num} has {len(row)} field"
                    f"{'s' if len(row) != 1 else ''} where the header has {len(header)}"
                )
            rows += 1
            if max_rows is not None and rows > max_rows:
                raise PermanentError(f"{name} has more than {max_rows} rows (max_rows)")
    except csv.Error as exc:
        raise PermanentError(
            f"{name}: line {reader.line_num} cannot be read as CSV ({exc})"
        ) from None
    if not rows:
        raise PermanentError(f"{name} has a header but no data rows")
    return rows


def _read_frame(name: str, data: bytes, delimiter: str) -> pl.DataFrame:
    last_error: pl.exceptions.PolarsError | None = None
    for infer_rows in (INFER_SCHEMA_ROWS, None):  # a late odd value: guess from every row
        try:
            return pl.read_csv(
                io.BytesIO(data),
                separator=delimiter,
                infer_schema_length=infer_rows,
                try_parse_dates=True,
                null_values=list(MISSING_MARKERS),
            )
        except pl.exceptions.PolarsError as exc:
            last_error = exc
    reason = str(last_error).strip().splitlines()[0] if last_error else "unknown error"
    raise PermanentError(f"{name} could not be read as CSV: {reason}")


def read_table(upload: Upload, max_rows: int | None) -> Table:
    """Check an uploaded file and read it into a frame; PermanentError saying what is wrong."""
    name, data = upload.filename, upload.data
    if len(data) > MAX_FILE_BYTES:
        raise PermanentError(
            f"{name} is {len(data) / 1_048_576:.1f} MB: at most "
            f"{MAX_FILE_BYTES // 1_048_576} MB can be profiled"
        )
    if not data.strip():
        raise PermanentError(f"{name} is empty")
    text = decode_text(name, data)
    delimiter = sniff_delimiter(text)
    count_rows(name, text, delimiter, max_rows)
    frame = _read_frame(name, data, delimiter)
    # lines left blank, or with every field empty, are not records (count_rows skips them too)
    frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))
    return Table(upload.id, name, delimiter, frame.rename(_names_for_blanks(frame.columns)))


def _names_for_blanks(columns: list[str]) -> dict[str, str]:
    """``column_N`` for each column whose header is blank, never clashing with another name."""
    taken = set(columns)
    renames = {}
    for i, column in enumerate(columns):
        if not column.strip():
            new = f"column_{i + 1}"
            while new in taken:
                new += "_"
            taken.add(new)
            renames[column] = new
    return renames
