"""mkdocs hooks: render the Sphinx-style leftovers of the docstrings cleanly.

The docstrings are Google style, read by mkdocstrings as Markdown; a few
Sphinx habits survive in them: cross-reference roles (:func:`adam` renders as
":func:" followed by the code) and a literal block introduced by a line
ending in "::". This hook drops the role prefix and the second colon.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):(?=<code)")
_DOUBLE_COLON = re.compile(r"::(</p>)")


def on_page_content(html, page, config, files):  # noqa: ARG001 - the mkdocs hook signature
    html = _ROLE.sub("", html)
    return _DOUBLE_COLON.sub(r":\1", html)
