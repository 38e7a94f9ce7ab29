"""mkdocs hooks: render the docstrings' plain-text habits cleanly.

The docstrings are Google style, read by mkdocstrings as Markdown. A few
habits from plain-text docstrings would render badly, and are fixed here:

* an ``Example:`` section (singular) is read like ``Examples:``, so its
  ``>>>`` lines become code instead of nested block quotes;
* Sphinx cross-reference roles (:func:`adam` renders as ":func:" followed by
  the code) lose the role prefix, and a line ending in "::" (a literal block
  follows) keeps one colon;
* an argument description that starts with a comparison ("> 0", ">= 0") is
  not a block quote.
"""

from __future__ import annotations

import re

try:  # griffe reads only "Examples" as an examples section; accept "Example" too.
    from griffe import DocstringSectionKind
    from griffe._internal.docstrings import google as _google

    _google._section_kind.setdefault("example", DocstringSectionKind.examples)
except (ImportError, AttributeError):  # a griffe without that table: render as before
    pass

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):(?=<code)")
_DOUBLE_COLON = re.compile(r"::(</p>)")
_COMPARISON_QUOTE = re.compile(r"<blockquote>\s*<p>(=?\s*[-\d.])", re.DOTALL)
# "> 0. Keyword only." reads as a block quote holding a list that starts at 0.
_COMPARISON_LIST = re.compile(
    r"<blockquote>\s*<ol>\s*<li>(.*?)</li>\s*</ol>\s*</blockquote>", re.DOTALL
)
_QUOTE_END = re.compile(r"(<p>&gt;=? [^<]*(?:<(?!/p>)[^<]*)*</p>)\s*</blockquote>", re.DOTALL)


def on_page_content(html, page, config, files):  # noqa: ARG001 - the mkdocs hook signature
    html = _ROLE.sub("", html)
    html = _DOUBLE_COLON.sub(r":\1", html)
    if page.file.src_uri.startswith("api/"):
        html = _COMPARISON_LIST.sub(r"<p>&gt; 0. \1</p>", html)
        html = _COMPARISON_QUOTE.sub(
            lambda m: "<p>&gt;" + ("" if m.group(1).startswith("=") else " ") + m.group(1), html
        )
        html = _QUOTE_END.sub(r"\1", html)
    return html
