"""Domain errors. Each carries a stable code that the adapters translate for people."""

from __future__ import annotations

from typing import Any


class ContestError(Exception):
    """A rule refused a request; nothing was changed."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def __repr__(self) -> str:
        return f"ContestError({self.code!r}, {self.params!r})"


class Conflict(Exception):
    """A concurrent writer got there first (a unique key was taken): the transaction is
    lost, and the use case may start over and see what the other one did."""


class ImportRejected(Exception):
    """An import file failed validation; every problem is listed and nothing was written."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class ImportProblem:
    """One problem of an import file: row number (1 = header), column and a reason code."""

    __slots__ = ("column", "reason", "row", "value")

    def __init__(self, row: int, column: str, reason: str, value: str = "") -> None:
        self.row = row
        self.column = column
        self.reason = reason
        self.value = value

    def __repr__(self) -> str:
        return f"ImportProblem(row={self.row}, column={self.column!r}, reason={self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImportProblem) and (
            self.row,
            self.column,
            self.reason,
        ) == (other.row, other.column, other.reason)

    def __hash__(self) -> int:
        return hash((self.row, self.column, self.reason))
