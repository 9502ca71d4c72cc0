"""HTML entities and markup in texts exported from web tools (help desks, CMSs, e-mail).

``--unescape-html`` turns ``I&rsquo;m &lt;3`` into ``I’m <3`` and
``<p>Hello<br>there</p>`` into ``Hello\\nthere``, with the standard library's
HTML parser; without it, :func:`has_entities` counts the texts that would
change so the ingest can suggest the option.

    >>> unescape_html("<p>I&rsquo;m here<br>at &amp; home</p>")
    'I’m here\\nat & home'
    >>> has_entities("Fish &amp; chips"), has_entities("R&D; fish & chips")
    (True, False)
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["has_entities", "unescape_html"]

_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}


def has_entities(text: str) -> bool:
    """Whether ``text`` holds a named or numeric HTML entity that means a character (``&rsquo;``, ``&#39;``)."""
    return "&" in text and any(html.unescape(m.group()) != m.group() for m in _ENTITY.finditer(text))


def unescape_html(text: str) -> str:
    """Entities decoded; when ``text`` holds tags, the markup removed (block tags become line breaks)."""
    if not _TAG.search(text):
        return html.unescape(text)
    p = _Text()
    p.feed(text)
    p.close()
    return re.sub(r"\n{3,}", "\n\n", "".join(p.parts)).strip()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BREAKS and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BREAKS and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)
