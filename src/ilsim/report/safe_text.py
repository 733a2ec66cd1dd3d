"""Text from model files, SBML files and tables, shown as plain text wherever ilsim prints or draws it.

Such text travels (BioModels, colleagues, supplements) and must never drive the user's terminal:
no Rich markup (``[link=...]``, ``[/]``), no escape sequences (``ESC[2J``, OSC 8 hyperlinks), no
carriage returns or bidirectional overrides that make a line read differently from what it holds.

- ``visible(text)``: every control character (C0 but newline and tab, DEL, C1), the bidirectional
  controls and the Unicode line and paragraph separators become visible escapes such as ``\\x1b``
  and ``\\u202e``.
- ``plain(text)``: ``visible`` and Rich markup escaped: for user text placed in a Rich markup
  string or a table cell.
- ``console(...)``: the Rich console of the CLI, which applies ``visible`` to every string it
  renders (markup or not, table cells and titles included), so text printed without ``plain``
  still cannot reach the terminal as control codes.
- ``html_text(text)``: ``visible`` and HTML-escaped, for reports.
- ``figure_text(text)``: ``visible`` with ``$`` escaped, so Matplotlib draws it as written instead
  of parsing it as math (an unbalanced ``$`` made the figure, and the run, fail).
"""

from __future__ import annotations

import html
import re

from rich.console import Console
from rich.markup import escape

# C0 controls but \t and \n, DEL and C1; Arabic letter mark, LRM/RLM, LRE..RLO, LRI..PDI; line and paragraph separators
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape_char(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``); newlines and tabs stay."""
    return _UNSAFE.sub(_escape_char, str(text))


def plain(text: object) -> str:
    """Untrusted ``text`` made safe to place in Rich markup: shown exactly as written, controls visible."""
    return escape(visible(text))


def html_text(text: object, quote: bool = True) -> str:
    """Untrusted ``text`` for an HTML page: escaped, controls visible."""
    return html.escape(visible(text), quote=quote)


def figure_text(text: object) -> str:
    """Untrusted ``text`` for a Matplotlib label or title: controls visible, never read as math."""
    return visible(text).replace("$", r"\$")


class SafeConsole(Console):
    """A Rich console whose strings are rendered with their control characters made visible."""

    def render_str(self, text: str, **kwargs):
        return super().render_str(visible(text), **kwargs)


def console(**kwargs) -> SafeConsole:
    """The console the CLI prints through; emoji codes (``:x:``) in user text stay text."""
    return SafeConsole(emoji=False, **kwargs)
