"""The Python documentation topics bundled with CPython (``pydoc_data.topics``, offline, ~465 KB)."""

from __future__ import annotations

import re
from typing import List

_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")  # doctest prompts: code stays, the prompt goes
_NO_WORD = re.compile(r"^[^0-9A-Za-z]*$")  # rules, underlines, borders, lone punctuation
_PUNCT_RUN = re.compile(r"([^\w\s])\1{3,}")  # 4+ repeats of one punctuation character ("....", "----")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")  # "| cell | cell |"
_SPACES = re.compile(r"[ \t]{2,}")
# Inline markup of prose lines: "literal" quotes and *emphasis* stars (code lines are indented).
_LITERAL = re.compile(r'"([^"\s][^"]*)"')
_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}([^\s*][^*]*?)\*{1,2}(?![\w*])")


def pydoc_topics(clean: bool = True) -> List[str]:
    """The CPython documentation topics (``pydoc_data.topics``), one document per topic, sorted by key.

    ``clean=True`` makes it prose and code for masked-LM training and evaluation: it drops table
    rules and borders (``+----+``, ``|====|``), heading underlines (``****``, ``====``), lines with no
    letter or digit, doctest prompts (``>>>``, ``...``) and runs of 4+ repeated punctuation
    characters, turns table rows into their cell text, unwraps the inline markup of prose lines
    (``"len()"`` -> ``len()``, ``*emphasis*`` -> ``emphasis``; indented code keeps its quotes) and
    collapses runs of spaces inside lines (indentation is kept). Without it, those characters are a
    large share of the masked tokens and a model scores well by predicting ``-`` or ``"``.
    """
    from pydoc_data.topics import topics

    documents = [topics[key] for key in sorted(topics)]
    return [clean_pydoc_text(text) for text in documents] if clean else documents


def clean_pydoc_text(text: str) -> str:
    """One topic's text without tables rules, underlines, prompts and punctuation runs (see above)."""
    lines = []
    for line in text.splitlines():
        line = _PROMPT.sub(r"\1", line)
        if _NO_WORD.match(line):
            if lines and lines[-1]:
                lines.append("")  # keep paragraph breaks, drop the rule itself
            continue
        if _TABLE_ROW.match(line):  # keep the cells' text
            line = " ".join(cell.strip() for cell in line.strip()[1:-1].split("|")).strip()
        line = _PUNCT_RUN.sub(" ", line)
        if not line[:1].isspace():
            line = _EMPHASIS.sub(r"\1", _LITERAL.sub(r"\1", line))
        indent = len(line) - len(line.lstrip())
        line = line[:indent] + _SPACES.sub(" ", line[indent:]).rstrip()
        lines.append(line)
    return "\n".join(lines).strip() + "\n"
