"""Reading the CSV files of dataset sources: one place for the header checks and errors."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Sequence

from vidseq.errors import UsageError


@contextlib.contextmanager
def csv_table(path, required: Sequence[str], layout: str):
    """Opens a CSV with a header line and yields its non-empty rows with their line numbers.

    Column names are matched case-insensitively. Every problem with the file itself
    (missing, unreadable, not UTF-8, bad CSV quoting, no header, a missing or doubled
    column) is a :class:`UsageError` naming the file and, where it helps, the line.
    Rows are read lazily, so a large file is never held in memory as text.

    Args:
        path: The CSV file.
        required: Column names the header must have.
        layout: What the file should look like, for messages (e.g. ``"a header
            path,label"``).

    Yields:
        ``(header, columns, rows)``: the header as written, the lower-cased column
        names, and an iterator of ``(line number, row)`` for every non-blank row.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
                if header is None:
                    raise UsageError(f"{path}: empty; expected {layout}")
                columns = [name.strip().lower() for name in header]
                missing = [name for name in required if name not in columns]
                if missing:
                    raise UsageError(
                        f"{path}, line 1: header lacks the column(s) {', '.join(missing)}; "
                        f"expected {layout}, found {','.join(header)!r}"
                    )
                for name in columns:
                    if name and columns.count(name) > 1:
                        raise UsageError(f"{path}, line 1: column {name!r} appears twice")
                rows: Iterator[tuple[int, list[str]]] = (
                    (reader.line_num, row) for row in reader if any(cell.strip() for cell in row)
                )
                yield header, columns, rows
            except UnicodeDecodeError as error:
                raise UsageError(f"{path}: not UTF-8 text ({error})") from None
            except csv.Error as error:
                raise UsageError(f"{path}, line {reader.line_num}: bad CSV ({error})") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot open it ({error.strerror or error})") from None
