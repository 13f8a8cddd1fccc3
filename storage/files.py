"""Reading import files (CSV in UTF-8 with or without BOM, or XLSX) into a header and rows.

Import files are hostile input (organisers will upload them from a chat): every size is
bounded before or while it is read, never after. The whole file is at most ``max_bytes``
(MAX_FILE_BYTES unless the caller says otherwise). An XLSX archive is checked before any
part of it is parsed: the size of its central directory, the declared uncompressed size of
all its parts together (MAX_UNCOMPRESSED_BYTES), the compression ratio of each large part
(MAX_COMPRESSION_RATIO). The parts are then inflated through a budget of the same size, so
a lying declaration stops at the cap too, and parsed with expat as a stream: no DTD, a
bounded nesting depth, no tag or text run longer than MAX_XML_RUN. Only real cells count
(the sheet's <dimension> is ignored): a non-empty cell past MAX_COLUMNS, or a non-empty row
past MAX_ROWS, refuses the file. Rows are handed out one by one, so a caller that stops
early (the bank cap) leaves the rest of the file unread.

Problems are raised as ImportRejected; those found while rows are being read are raised by
the row iterator (``contest.importing`` adds them to the problems found so far).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.parsers import expat

from contest.errors import ImportProblem, ImportRejected
from contest.importing import FlaggedCell

MB = 1024 * 1024
MAX_FILE_BYTES = 20 * MB  # an import file read by the command line
MAX_UPLOAD_BYTES = 5 * MB  # an import file sent in the chat (pass it as max_bytes)
MAX_UNCOMPRESSED_BYTES = 50 * MB  # XLSX: all parts of the archive together, inflated
MAX_COMPRESSION_RATIO = 100  # XLSX: a part over RATIO_FROM_BYTES inflating more is a bomb
RATIO_FROM_BYTES = 1 * MB  # (real sheets inflate 5-20 times; deflate tops out near 1,000)
MAX_ARCHIVE_ENTRIES = 1_000  # XLSX: parts in the archive (a workbook has a dozen or so)
MAX_CENTRAL_DIRECTORY = 1 * MB  # XLSX: zipfile builds an object for each entry listed there
MAX_ROWS = 100_000  # rows of the sheet or records of the CSV, header included
MAX_COLUMNS = 50  # the last non-empty cell of a row
MAX_CELL_CHARS = 131_072  # one cell (the csv module's own field limit)
MAX_SHARED_STRINGS = 500_000  # XLSX: the shared-string table (each one is held in memory)
MAX_XML_RUN = 1 * MB  # XLSX: bytes between two "<": bounds a tag and its attributes
MAX_XML_DEPTH = 100  # XLSX: element nesting (a sheet needs about 7)
MAX_CSV_SEPARATORS = 1_000  # separators in one CSV record, counted before csv splits it
CHUNK = 64 * 1024

Row = dict[str, str | None]
Table = tuple[list[str], Iterator[Row]]
Cells = list[str | None]


def _rejected(reason: str, row: int = 0, value: object = "") -> ImportRejected:
    return ImportRejected([ImportProblem(row, "", reason, str(value))])


def read_table(
    path: str | Path, data: bytes | None = None, *, max_bytes: int = MAX_FILE_BYTES
) -> Table:
    """Header (lower-cased, trimmed) and an iterator of rows keyed by header, read one by
    one; raises ImportRejected, here for the whole file or later from the iterator."""
    name = str(path).lower()
    if name.endswith(".xlsx"):
        reader: Callable[[bytes], Iterator[Cells]] = _xlsx_records
    elif name.endswith(".csv") or name.endswith(".txt"):
        reader = _csv_records
    else:
        raise _rejected("file_type")
    if data is None:
        data = _read_file(Path(path), max_bytes)
    elif len(data) > max_bytes:
        raise _rejected("file_too_large", value=max_bytes)
    return _table(reader(data))


def _read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refused by its size before it is read and read no further than
    the cap (a device or a growing file has no reliable size)."""
    try:
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_size > max_bytes:
                raise _rejected("file_too_large", value=max_bytes)
            data = file.read(max_bytes + 1)
    except OSError:
        raise _rejected("file_unreadable") from None
    if len(data) > max_bytes:
        raise _rejected("file_too_large", value=max_bytes)
    return data


def _table(records: Iterator[Cells]) -> Table:
    first = next(records, None)
    if first is None:
        raise _rejected("empty_file", row=1)
    header = [(h or "").strip().lower() for h in first]

    def rows() -> Iterator[Row]:
        for cells in records:
            width = len(cells)
            yield {
                column: cells[index] if index < width else None
                for index, column in enumerate(header)
            }

    return header, rows()


def _used_width(cells: list[str]) -> int:
    width = len(cells)
    while width and not cells[width - 1]:
        width -= 1
    return width


# ------------------------------------------------------------------ CSV


class _TooWide(Exception):
    pass


class _Lines:
    """The lines of the text for csv.reader, counting the separators of the current
    record: a row of millions of separators is refused before csv builds it."""

    def __init__(self, lines: Iterator[str], delimiter: str) -> None:
        self.lines = lines
        self.delimiter = delimiter
        self.separators = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.separators += line.count(self.delimiter)
        if self.separators > MAX_CSV_SEPARATORS:
            raise _TooWide
        return line


def _check_utf8(data: bytes) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), MB):
            decoder.decode(view[start : start + MB])  # a megabyte of text at a time
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _rejected("not_utf8") from None


def _csv_records(data: bytes) -> Iterator[Cells]:
    _check_utf8(data)
    sample = data[: 4 * CHUNK].decode("utf-8-sig", errors="ignore")[:4096]
    # Only the delimiter is guessed; quoting stays Excel's ("" inside a quoted cell is ").
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    lines = _Lines(text, delimiter)
    reader = csv.reader(lines, csv.excel, delimiter=delimiter)
    number = 0
    while True:
        number += 1
        lines.separators = 0
        try:
            record = next(reader)
        except StopIteration:
            return
        except _TooWide:
            raise _rejected("too_many_columns", number, MAX_COLUMNS) from None
        except csv.Error as exc:  # the field limit, in practice (strict is off)
            if "field limit" in str(exc):
                raise _rejected("cell_too_large", number, csv.field_size_limit()) from None
            raise _rejected("bad_csv", number) from None
        if number > MAX_ROWS:
            raise _rejected("too_many_rows", number, MAX_ROWS)
        if _used_width(record) > MAX_COLUMNS:
            raise _rejected("too_many_columns", number, MAX_COLUMNS)
        yield list(record)


# ------------------------------------------------------------------ XLSX

_REL_OFFICE_DOCUMENT = "/officeDocument"
_REL_WORKSHEET = "/worksheet"
_REL_SHARED_STRINGS = "/sharedStrings"
_ESCAPED = re.compile("_x([0-9A-Fa-f]{4})_")
_CELL_REF = re.compile("([A-Z]{1,3})([0-9]{1,7})")


def _unescape(text: str) -> str:
    """OOXML escapes of characters XML cannot carry: _x000D_ is a carriage return, and
    _x005F_ an underscore (how Excel writes a literal "_x0041_")."""
    if "_x" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


class _BadXlsx(Exception):
    """The archive or its XML is damaged or uses what a spreadsheet never needs."""


def _xlsx_records(data: bytes) -> Iterator[Cells]:
    archive = _open_archive(data)
    try:
        budget = _Budget(MAX_UNCOMPRESSED_BYTES)
        try:
            sheet, strings_part = _locate_parts(archive, budget)
            strings = _shared_strings(archive, strings_part, budget) if strings_part else []
        except _BadXlsx:
            raise _rejected("bad_xlsx") from None
        yield from _sheet_records(archive, sheet, strings, budget)
    finally:
        archive.close()


def _open_archive(data: bytes) -> zipfile.ZipFile:
    """The archive, once its directory and declared sizes are known to be reasonable."""
    entries, directory_size = _central_directory(data)
    if entries > MAX_ARCHIVE_ENTRIES or directory_size > MAX_CENTRAL_DIRECTORY:
        raise _rejected("bad_xlsx")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception:  # zipfile raises many kinds for a damaged archive
        raise _rejected("bad_xlsx") from None
    try:
        if len(infos) > MAX_ARCHIVE_ENTRIES:
            raise _rejected("bad_xlsx")
        for info in infos:
            if info.flag_bits & 0x1 or info.compress_type not in (
                zipfile.ZIP_STORED,
                zipfile.ZIP_DEFLATED,
            ):
                raise _rejected("bad_xlsx")  # encrypted, or bzip2/lzma: not a spreadsheet
        if sum(info.file_size for info in infos) > MAX_UNCOMPRESSED_BYTES:
            raise _rejected("xlsx_too_large", value=MAX_UNCOMPRESSED_BYTES)
        for info in infos:
            if (
                info.file_size > RATIO_FROM_BYTES
                and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size
            ):
                raise _rejected("xlsx_compression", value=MAX_COMPRESSION_RATIO)
    except ImportRejected:
        archive.close()
        raise
    return archive


def _central_directory(data: bytes) -> tuple[int, int]:
    """Entry count and size of the central directory, from the end record (zip64 too),
    read before zipfile parses the directory into one object per entry."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or len(data) < end + 22:
        raise _rejected("bad_xlsx")
    entries = int.from_bytes(data[end + 10 : end + 12], "little")
    size = int.from_bytes(data[end + 12 : end + 16], "little")
    if entries != 0xFFFF and size != 0xFFFFFFFF:
        return entries, size
    locator = end - 20
    if locator < 0 or data[locator : locator + 4] != b"PK\x06\x07":
        raise _rejected("bad_xlsx")
    record = int.from_bytes(data[locator + 8 : locator + 16], "little")
    if data[record : record + 4] != b"PK\x06\x06":
        raise _rejected("bad_xlsx")
    entries = int.from_bytes(data[record + 32 : record + 40], "little")
    size = int.from_bytes(data[record + 40 : record + 48], "little")
    return entries, size


class _Budget:
    """Bytes that may still be inflated, across every part read."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise _rejected("xlsx_too_large", value=MAX_UNCOMPRESSED_BYTES)


class _Xml:
    """An expat parser fed by chunks of one part: handlers by local name, no DTD, bounded
    depth and bounded runs between two "<"."""

    def __init__(
        self,
        start: Callable[[str, dict[str, str]], None],
        end: Callable[[str], None] | None = None,
        text: Callable[[str], None] | None = None,
    ) -> None:
        self.depth = 0
        self.run = 0
        self.parser = expat.ParserCreate(namespace_separator="}")
        self.parser.buffer_text = True

        def on_start(name: str, attrs: dict[str, str]) -> None:
            self.depth += 1
            if self.depth > MAX_XML_DEPTH:
                raise _BadXlsx("too deep")
            start(name.rpartition("}")[2], {k.rpartition("}")[2]: v for k, v in attrs.items()})

        def on_end(name: str) -> None:
            self.depth -= 1
            if end is not None:
                end(name.rpartition("}")[2])

        def refuse(*_: Any) -> None:
            raise _BadXlsx("DTD")

        self.parser.StartElementHandler = on_start
        self.parser.EndElementHandler = on_end
        if text is not None:
            self.parser.CharacterDataHandler = text
        self.parser.StartDoctypeDeclHandler = refuse
        self.parser.EntityDeclHandler = refuse

    def feed(self, chunk: bytes, final: bool = False) -> None:
        pieces = chunk.split(b"<")
        if len(pieces) == 1:
            self.run += len(chunk)
            longest = self.run
        else:
            longest = max(self.run + len(pieces[0]), *map(len, pieces[1:]))
            self.run = len(pieces[-1])
        if longest > MAX_XML_RUN:
            raise _BadXlsx("run")
        try:
            self.parser.Parse(chunk, final)
        except (ImportRejected, _BadXlsx):
            raise
        except Exception:  # ExpatError, or a value our handlers could not read
            raise _BadXlsx("xml") from None


def _chunks(archive: zipfile.ZipFile, name: str, budget: _Budget) -> Iterator[bytes]:
    """The part's bytes, inflated a chunk at a time through the budget."""
    try:
        part = archive.open(name)
    except Exception:  # missing, or a local header contradicting the directory
        raise _BadXlsx("part") from None
    with part:
        while True:
            try:
                chunk = part.read(CHUNK)
            except Exception:  # bad CRC, a size that lied, damaged deflate data
                raise _BadXlsx("inflate") from None
            if not chunk:
                return
            budget.take(len(chunk))
            yield chunk


def _parse_part(archive: zipfile.ZipFile, name: str, budget: _Budget, xml: _Xml) -> None:
    for chunk in _chunks(archive, name, budget):
        xml.feed(chunk)
    xml.feed(b"", final=True)


def _rels_name(part: str) -> str:
    folder, _, base = part.rpartition("/")
    return f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"


def _target(source: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def _relationships(
    archive: zipfile.ZipFile, part: str, budget: _Budget, wanted: Callable[[str, str], bool]
) -> list[tuple[str, str, str]]:
    """(id, type, target) of the part's relationships that ``wanted(id, type)`` keeps."""
    found: list[tuple[str, str, str]] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if name != "Relationship" or attrs.get("TargetMode") == "External":
            return
        rel_id, rel_type = attrs.get("Id", ""), attrs.get("Type", "")
        if wanted(rel_id, rel_type) and len(found) < MAX_ARCHIVE_ENTRIES:
            found.append((rel_id, rel_type, _target(part, attrs.get("Target", ""))))

    _parse_part(archive, _rels_name(part), budget, _Xml(start))
    return found


def _locate_parts(archive: zipfile.ZipFile, budget: _Budget) -> tuple[str, str | None]:
    """The first worksheet and the shared-string table, found as Excel finds them."""
    names = set(archive.namelist())
    workbook = "xl/workbook.xml"
    if "_rels/.rels" in names:
        documents = _relationships(
            archive, "", budget, lambda _, kind: kind.endswith(_REL_OFFICE_DOCUMENT)
        )
        if documents:
            workbook = documents[0][2]
    sheet_ids: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == "sheet" and "id" in attrs and len(sheet_ids) < MAX_ARCHIVE_ENTRIES:
            sheet_ids.append(attrs["id"])

    _parse_part(archive, workbook, budget, _Xml(start))
    order = {rel_id: index for index, rel_id in enumerate(sheet_ids)}
    rels = _relationships(
        archive,
        workbook,
        budget,
        lambda rel_id, kind: (
            (rel_id in order and kind.endswith(_REL_WORKSHEET))
            or kind.endswith(_REL_SHARED_STRINGS)
        ),
    )
    sheets = sorted(
        (order[rel_id], target) for rel_id, kind, target in rels if kind.endswith(_REL_WORKSHEET)
    )
    strings = [target for _, kind, target in rels if kind.endswith(_REL_SHARED_STRINGS)]
    if not sheets or sheets[0][1] not in names:
        raise _BadXlsx("no worksheet")
    shared = strings[0] if strings and strings[0] in names else None
    return sheets[0][1], shared


class _Text:
    """Text of an <si> or <is>: its <t> elements, phonetic runs (<rPh>) left out, capped."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.inside = False
        self.phonetic = 0

    def start(self, name: str) -> None:
        if name == "rPh":
            self.phonetic += 1
        elif name == "t" and not self.phonetic:
            self.inside = True

    def end(self, name: str) -> None:
        if name == "rPh":
            self.phonetic -= 1
        elif name == "t":
            self.inside = False

    def add(self, text: str) -> None:
        if self.inside and self.size <= MAX_CELL_CHARS:
            self.size += len(text)
            self.parts.append(text)

    def value(self) -> str:
        if self.size > MAX_CELL_CHARS:
            return FlaggedCell(str(MAX_CELL_CHARS), "cell_too_large")
        value = _unescape("".join(self.parts))
        self.parts.clear()
        self.size = 0
        return value


def _shared_strings(archive: zipfile.ZipFile, part: str, budget: _Budget) -> list[str]:
    strings: list[str] = []
    item: _Text | None = None

    def start(name: str, _: dict[str, str]) -> None:
        nonlocal item
        if name == "si":
            item = _Text()
        elif item is not None:
            item.start(name)

    def end(name: str) -> None:
        nonlocal item
        if item is None:
            return
        if name == "si":
            if len(strings) >= MAX_SHARED_STRINGS:
                raise _BadXlsx("too many strings")
            strings.append(item.value())
            item = None
        else:
            item.end(name)

    def text(data: str) -> None:
        if item is not None:
            item.add(data)

    _parse_part(archive, part, budget, _Xml(start, end, text))
    return strings


def _column(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index


def _number(value: str) -> str:
    """A number as openpyxl gives it, then as text: "25" and "25.0" read "25"."""
    try:
        if "." in value or "e" in value or "E" in value:
            number = float(value)
            return str(int(number)) if number.is_integer() else str(number)
        return str(int(value))
    except (ValueError, OverflowError):
        return value


class _Sheet:
    """State of the worksheet parse: the cells of the current row; finished rows wait in
    ``ready`` as (row number, cells) until the reader hands them out."""

    def __init__(self, strings: list[str]) -> None:
        self.strings = strings
        self.ready: list[tuple[int, dict[int, str]]] = []
        self.in_data = False
        self.row = 0
        self.cells: dict[int, str] = {}
        self.column = 0
        self.kind = ""
        self.value: list[str] | None = None
        self.formula: list[str] | None = None
        self.collect: list[str] | None = None
        self.collected = 0
        self.inline: _Text | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "sheetData":
            self.in_data = True
        elif not self.in_data:
            return
        elif name == "row":
            number = attrs.get("r")
            if number is None:
                row = self.row + 1
            else:
                valid = number.isascii() and number.isdigit() and len(number) < 8
                row = int(number) if valid else 0
            if row <= self.row:  # rows come in order, each once
                raise _BadXlsx("row order")
            self.row, self.cells, self.column = row, {}, 0
        elif name == "c":
            match = _CELL_REF.fullmatch(attrs.get("r", ""))
            self.column = _column(match.group(1)) if match else self.column + 1
            self.kind = attrs.get("t", "n")
            self.value = self.formula = self.collect = self.inline = None
        elif name == "v":
            self.value = self.collect = []
            self.collected = 0
        elif name == "f":
            self.formula = self.collect = []
            self.collected = 0
        elif name == "is":
            self.inline = _Text()
        elif self.inline is not None:
            self.inline.start(name)

    def end(self, name: str) -> None:
        if not self.in_data:
            return
        if name == "sheetData":
            self.in_data = False
        elif name in ("v", "f"):
            self.collect = None
        elif name == "is":
            pass
        elif name == "c":
            value = self._cell_value()
            if value:  # a real cell: <dimension> and empty styled cells do not count
                if self.row > MAX_ROWS:
                    raise _rejected("too_many_rows", self.row, MAX_ROWS)
                if self.column > MAX_COLUMNS:
                    raise _rejected("too_many_columns", self.row, MAX_COLUMNS)
                self.cells[self.column] = value
        elif name == "row":
            if self.cells:
                self.ready.append((self.row, self.cells))
        elif self.inline is not None:
            self.inline.end(name)

    def text(self, data: str) -> None:
        if self.collect is not None:
            self.collected += len(data)
            if self.collected > MAX_CELL_CHARS:
                raise _rejected("cell_too_large", self.row, MAX_CELL_CHARS)
            self.collect.append(data)
        elif self.inline is not None:
            self.inline.add(data)

    def _cell_value(self) -> str:
        kind = self.kind
        if kind == "inlineStr":
            return self.inline.value() if self.inline is not None else ""
        value = "".join(self.value or ())
        if not value:
            if self.formula is not None:  # Excel always stores the result; scripts do not
                return FlaggedCell("=" + "".join(self.formula), "formula")
            return ""
        if kind == "s":
            try:
                return self.strings[int(value)]
            except (ValueError, IndexError):
                raise _BadXlsx("shared string") from None
        if kind == "b":
            return "True" if value.strip() not in ("0", "false") else "False"
        if kind in ("str", "e", "d"):
            return _unescape(value)
        return _number(value)


def _sheet_records(
    archive: zipfile.ZipFile, part: str, strings: list[str], budget: _Budget
) -> Iterator[Cells]:
    sheet = _Sheet(strings)
    xml = _Xml(sheet.start, sheet.end, sheet.text)
    handed = 0  # the last row number handed out; rows between are blank

    def drain() -> Iterator[Cells]:
        nonlocal handed
        for number, cells in sheet.ready:
            for _ in range(handed + 1, number):
                yield []
            handed = number
            row: Cells = [None] * max(cells)
            for column, value in cells.items():
                row[column - 1] = value
            yield row
        sheet.ready.clear()

    try:
        for chunk in _chunks(archive, part, budget):
            xml.feed(chunk)
            yield from drain()
        xml.feed(b"", final=True)
        yield from drain()
    except _BadXlsx:
        raise _rejected("bad_xlsx") from None
