"""Small-number protection of a published table: primary and complementary cell suppression.

A table is a matrix of counts (rows: periods or regions; columns: the values of a breakdown) published
with its row totals, column totals and grand total. Every entry, totals included, that is above zero
and under the threshold (5 by default) is withheld and shown as ``<5`` (*primary* suppression). Such a
cell must not be recoverable from what is published, so more entries are withheld (*complementary*
suppression, shown as ``x``; a zero, when nothing else is left in a line, shown as ``<5``) until the
smallest and the largest value the cell can take, given every published number and what the markers
say (``<5`` is 0 to 4, ``x`` is 5 or more), differ. The check is exact and cheap (a search for a cycle of withheld entries, ``_pinned``); the
test suite attacks the result independently with a linear programme (``bounds``): the table's lines
form a totally unimodular system, so the bounds it finds are whole numbers that integer tables reach.

Zeros are published as 0, except a zero withheld because nothing else was left in a line to protect a
neighbour: it is shown "<5" too, which is why "<5" means 0 to 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

THRESHOLD = 5
PRIMARY = "primary"
COMPLEMENTARY = "complementary"
ZERO = "zero"  # a zero withheld to protect a neighbour, shown "<5" like a small count

# An entry of the table: ("cell", i, j), ("row", i) a row total, ("col", j) a column total, ("all",).
Entry = tuple


@dataclass
class Protected:
    cells: list[list[int]]
    row_totals: list[int]
    col_totals: list[int]
    total: int
    withheld: dict[Entry, str]  # entry -> primary | complementary
    threshold: int = THRESHOLD

    def value(self, entry: Entry) -> int:
        kind = entry[0]
        if kind == "cell":
            return self.cells[entry[1]][entry[2]]
        if kind == "row":
            return self.row_totals[entry[1]]
        if kind == "col":
            return self.col_totals[entry[1]]
        return self.total

    def shown(self, entry: Entry) -> str:
        """The entry as published: its count, ``<5`` (primary) or ``x`` (complementary)."""
        reason = self.withheld.get(entry)
        if reason in (PRIMARY, ZERO):
            return f"<{self.threshold}"
        if reason == COMPLEMENTARY:
            return "x"
        return str(self.value(entry))

    def published(self, entry: Entry) -> int | None:
        return None if entry in self.withheld else self.value(entry)


def lines(rows: int, cols: int) -> list[list[tuple[Entry, int]]]:
    """The table's additive relations, each a list of (entry, coefficient) summing to zero."""
    out: list[list[tuple[Entry, int]]] = []
    for i in range(rows):
        out.append([(("cell", i, j), 1) for j in range(cols)] + [(("row", i), -1)])
    for j in range(cols):
        out.append([(("cell", i, j), 1) for i in range(rows)] + [(("col", j), -1)])
    out.append([(("col", j), 1) for j in range(cols)] + [(("all",), -1)])
    out.append([(("row", i), 1) for i in range(rows)] + [(("all",), -1)])
    return out


def protect(cells: Sequence[Sequence[int]], threshold: int = THRESHOLD) -> Protected:
    """The table with its totals and the entries to withhold so that no small count can be worked out."""
    matrix = [list(map(int, row)) for row in cells]
    rows = len(matrix)
    cols = len(matrix[0]) if rows else 0
    table = Protected(matrix, [sum(r) for r in matrix], [sum(matrix[i][j] for i in range(rows)) for j in range(cols)],
                      sum(map(sum, matrix)), {}, threshold)
    if rows == 0 or cols == 0:
        return table
    relations = lines(rows, cols)
    entries = {entry for line in relations for entry, _ in line}
    for entry in entries:
        if 0 < table.value(entry) < threshold:
            table.withheld[entry] = PRIMARY
    if not table.withheld:
        return table
    while True:
        _no_lonely_withholding(table, relations)
        exposed = [entry for entry, reason in table.withheld.items()
                   if reason == PRIMARY and _pinned(table, relations, entry)]
        if not exposed:
            return table
        if not _widen(table, relations, exposed[0]):
            # Nothing left to withhold around it (cannot happen with a consistent table): withhold all.
            for entry in entries:
                if entry not in table.withheld:
                    _withhold(table, entry)
            return table


def _candidates(table: Protected, line: list[tuple[Entry, int]]) -> list[Entry]:
    """Entries of a line that may be withheld in addition: published ones, counts before zeros (a zero
    is withheld only when nothing else is left), cells before totals, smallest first."""
    found = [entry for entry, _ in line if entry not in table.withheld]
    return sorted(found, key=lambda e: (table.value(e) == 0, e[0] != "cell", e[0] == "all", table.value(e)))


def _withhold(table: Protected, entry: Entry) -> None:
    table.withheld[entry] = ZERO if table.value(entry) == 0 else COMPLEMENTARY


def _no_lonely_withholding(table: Protected, relations: list) -> None:
    """No line may hold exactly one withheld entry (it would be the line's sum minus the rest)."""
    changed = True
    while changed:
        changed = False
        for line in relations:
            if sum(1 for entry, _ in line if entry in table.withheld) == 1:
                options = _candidates(table, line)
                if options:
                    _withhold(table, options[0])
                    changed = True


def _widen(table: Protected, relations: list, entry: Entry) -> bool:
    """Withhold the largest published entry of a line through ``entry`` (the most room for doubt)."""
    best: Entry | None = None
    for line in relations:
        if any(e == entry for e, _ in line):
            for candidate in _candidates(table, line):
                if best is None or (candidate[0] == "cell", table.value(candidate)) > (best[0] == "cell",
                                                                                      table.value(best)):
                    best = candidate
    if best is None:
        return False
    _withhold(table, best)
    return True


def bounds(withheld: dict[Entry, str], published: dict[Entry, int], relations: list, entry: Entry,
           threshold: int = THRESHOLD) -> tuple[float, float]:
    """The least and greatest value of a withheld ``entry`` consistent with the published entries and
    the markers: what the best-informed reader of the table can conclude."""
    unknown = sorted(withheld)
    index = {e: k for k, e in enumerate(unknown)}
    a_eq, b_eq = [], []
    for line in relations:
        row = np.zeros(len(unknown))
        rest = 0
        touched = False
        for e, coefficient in line:
            if e in index:
                row[index[e]] += coefficient
                touched = True
            else:
                rest += coefficient * published[e]
        if touched:
            a_eq.append(row)
            b_eq.append(-rest)
    box = [(threshold, None) if withheld[e] == COMPLEMENTARY else (0, threshold - 1) for e in unknown]
    c = np.zeros(len(unknown))
    c[index[entry]] = 1
    low = linprog(c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=box, method="highs")
    high = linprog(-c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=box, method="highs")
    if low.status != 0 or high.status != 0:
        raise ValueError("the published table is inconsistent")
    return round(low.fun), round(-high.fun)


# The check without a linear programme. Write each line so that every entry has the same sign in both
# of its lines (rows with the total row: cells +1, row totals -1, column totals -1 in the total row, the
# grand total +1; columns alike): entries are then the edges of a bipartite graph between row-type and
# column-type lines, and a change of the withheld entries that keeps every published number is a
# circulation on it. A withheld small count can take another value if and only if a cycle through it
# alternates +1 and -1 (in those signs) with every entry on it free to move that way: the difference
# of two tables agreeing with the publication splits into such cycles (a conformal decomposition).
# So ``_pinned`` is exact, and a breadth-first search per small count instead of two programmes.

def _ends(entry: Entry, rows: int, cols: int) -> tuple[tuple[str, int], tuple[str, int], int]:
    """(row-type line, column-type line, sign) of an entry; the total row and column are index -1."""
    kind = entry[0]
    if kind == "cell":
        return ("r", entry[1]), ("c", entry[2]), 1
    if kind == "row":
        return ("r", entry[1]), ("c", -1), -1
    if kind == "col":
        return ("r", -1), ("c", entry[1]), -1
    return ("r", -1), ("c", -1), 1


def _may_move(table: Protected, entry: Entry, step: int) -> bool:
    """Whether a withheld entry can move by ``step`` (+1/-1) and still agree with its marker."""
    value = table.value(entry) + step
    if table.withheld[entry] == COMPLEMENTARY:
        return value >= table.threshold
    return 0 <= value <= table.threshold - 1


def _pinned(table: Protected, relations: list, entry: Entry) -> bool:
    rows, cols = len(table.cells), len(table.row_totals and table.cells[0])
    arcs: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for other in table.withheld:
        if other == entry:
            continue
        r, c, sign = _ends(other, rows, cols)
        if _may_move(table, other, sign):  # y = +1: traversed row -> column
            arcs.setdefault(r, []).append(c)
        if _may_move(table, other, -sign):  # y = -1: traversed column -> row
            arcs.setdefault(c, []).append(r)
    r, c, sign = _ends(entry, rows, cols)
    for step in (1, -1):
        if not _may_move(table, entry, step):
            continue
        # y = sign * step on the entry: +1 goes row -> column, so the cycle closes column -> ... -> row.
        start, goal = (c, r) if sign * step == 1 else (r, c)
        seen, frontier = {start}, [start]
        while frontier:
            node = frontier.pop()
            if node == goal:
                return False
            for nxt in arcs.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
    return True
