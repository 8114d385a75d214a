"""Lucene's classic query syntax, parsed the way Solr's standard parser reads it.

Covers what CKAN and its API clients send: ``*:*``, ``field:value``, ``field:"a phrase"``,
``field:(a OR b)``, ``field:[low TO high]`` / ``{low TO high}`` with ``*`` and ``NOW`` date
math, wildcards ``*`` and ``?`` in a term, ``+`` / ``-`` / ``NOT`` / ``AND`` / ``OR``,
parentheses, backslash escapes, and the default operator (``q.op``).

Each clause gets Lucene's occur: MUST, SHOULD or MUST_NOT. A boolean query matches when every
MUST clause does, no MUST_NOT clause does, and (when it has no MUST clause) at least one SHOULD
clause does; a query of MUST_NOT clauses only matches everything else, as Solr makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MUST, SHOULD, MUST_NOT = "must", "should", "must_not"
_SPECIAL = set(' \t\r\n()[]{}":^~')  # end a term; ':' ends a field name


class QuerySyntaxError(ValueError):
    """What Solr answers with ``org.apache.solr.search.SyntaxError``."""


@dataclass
class Term:
    field: str | None  # None: the default field (``df``)
    value: str  # unescaped; ``*`` and ``?`` stay wildcards when ``wildcard``
    phrase: bool = False
    wildcard: bool = False


@dataclass
class Range:
    field: str | None
    low: str | None  # None: ``*``
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass
class MatchAll:
    pass


@dataclass
class Boolean:
    clauses: list[tuple[str, Node]] = field(default_factory=list)


Node = Term | Range | MatchAll | Boolean  # needs Python 3.10, as CKAN 2.12 does


def parse(text: str, *, default_and: bool = True) -> Node:
    """Parse ``q`` or one ``fq``."""
    parser = _Parser(text, default_and)
    node = parser.boolean(None, closing=None)
    return node


class _Parser:
    def __init__(self, text: str, default_and: bool) -> None:
        self.text = text
        self.i = 0
        self.default = MUST if default_and else SHOULD

    def error(self, message: str) -> QuerySyntaxError:
        return QuerySyntaxError(f"Cannot parse '{self.text}': {message} at position {self.i}")

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek_word(self, word: str) -> bool:
        end = self.i + len(word)
        return (self.text.startswith(word, self.i)
                and (end >= len(self.text) or self.text[end].isspace() or self.text[end] == "("))

    def boolean(self, default_field: str | None, closing: str | None) -> Node:
        clauses: list[tuple[str, Node]] = []
        conjunction: str | None = None
        while True:
            self.skip_space()
            if self.i >= len(self.text):
                if closing:
                    raise self.error(f"missing '{closing}'")
                break
            if closing and self.text[self.i] == closing:
                self.i += 1
                break
            if self.peek_word("AND") or self.text.startswith("&&", self.i):
                conjunction = MUST
                self.i += 3 if self.text[self.i] == "A" else 2
                if clauses and clauses[-1][0] == SHOULD:
                    clauses[-1] = (MUST, clauses[-1][1])
                continue
            if self.peek_word("OR") or self.text.startswith("||", self.i):
                conjunction = SHOULD
                self.i += 2
                if clauses and clauses[-1][0] == MUST and self.default == MUST:
                    clauses[-1] = (SHOULD, clauses[-1][1])
                continue
            occur = conjunction or self.default
            if self.peek_word("NOT") or self.text[self.i] == "!":
                self.i += 3 if self.text[self.i] == "N" else 1
                occur = MUST_NOT
            elif self.text[self.i] == "+":
                self.i += 1
                occur = MUST
            elif self.text[self.i] == "-":
                self.i += 1
                occur = MUST_NOT
            clauses.append((occur, self.clause(default_field)))
            conjunction = None
        if not clauses:
            return MatchAll() if closing is None else Boolean([])
        if len(clauses) == 1 and clauses[0][0] != MUST_NOT:
            return clauses[0][1]
        return Boolean(clauses)

    def clause(self, default_field: str | None) -> Node:
        self.skip_space()
        if self.i >= len(self.text):
            raise self.error("a clause is missing")
        if self.text[self.i] == "(":
            self.i += 1
            return self.boolean(default_field, ")")
        name = self.field_name()
        if name is not None:
            self.skip_space()
            if self.i < len(self.text) and self.text[self.i] == "(":
                self.i += 1
                return self.boolean(name, ")")
            return self.value(name)
        return self.value(default_field)

    def field_name(self) -> str | None:
        """``name:`` ahead (consumed), or None (nothing consumed)."""
        j = self.i
        while j < len(self.text) and (self.text[j] not in _SPECIAL or self.text[j] == ":"):
            if self.text[j] == "\\":
                return None
            if self.text[j] == ":":
                name = self.text[self.i:j]
                if not name:
                    raise self.error("empty field name")
                self.i = j + 1
                return name
            j += 1
        return None

    def value(self, name: str | None) -> Node:
        if self.i >= len(self.text):
            raise self.error("a value is missing")
        char = self.text[self.i]
        if char == '"':
            end = self.i + 1
            out = []
            while end < len(self.text) and self.text[end] != '"':
                if self.text[end] == "\\" and end + 1 < len(self.text):
                    end += 1
                out.append(self.text[end])
                end += 1
            if end >= len(self.text):
                raise self.error("unterminated phrase")
            self.i = end + 1
            self.skip_boost()
            return Term(name, "".join(out), phrase=True)
        if char in "[{":
            return self.range(name)
        word, wildcard = self.word()
        if not word:
            raise self.error(f"unexpected '{char}'")
        if name == "*" and word == "*":
            return MatchAll()
        return Term(name, word, wildcard=wildcard)

    def word(self) -> tuple[str, bool]:
        out = []
        wildcard = False
        while self.i < len(self.text) and self.text[self.i] not in _SPECIAL:
            char = self.text[self.i]
            if char == "\\" and self.i + 1 < len(self.text):
                self.i += 1
                out.append("\\" + self.text[self.i])  # escaped: never a wildcard
            else:
                wildcard = wildcard or char in "*?"
                out.append(char)
            self.i += 1
        self.skip_boost()
        text = "".join(out)
        return (text if wildcard else text.replace("\\", "")), wildcard

    def skip_boost(self) -> None:
        if self.i < len(self.text) and self.text[self.i] in "^~":
            self.i += 1
            while self.i < len(self.text) and (self.text[self.i].isdigit() or self.text[self.i] == "."):
                self.i += 1

    def range(self, name: str | None) -> Node:
        include_low = self.text[self.i] == "["
        close = self.text.find("]" if include_low else "}", self.i)
        other = self.text.find("}" if include_low else "]", self.i)
        if close < 0 and other < 0:
            raise self.error("unterminated range")
        end = min(x for x in (close, other) if x >= 0)
        parts = self.text[self.i + 1:end].split()
        if len(parts) != 3 or parts[1] != "TO":
            raise self.error("a range is '[low TO high]'")
        self.i = end + 1
        low, high = (None if p == "*" else p.strip('"').replace("\\", "") for p in (parts[0], parts[2]))
        return Range(name, low, high, include_low, self.text[end] == "]")
