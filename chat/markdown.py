"""An answer as staff should read it: Markdown rendered to HTML that is safe to show.

markdown-it (CommonMark, with the tables and strikethrough models like to write) never
passes raw HTML through, and nh3 (the Ammonia sanitizer) keeps only harmless tags and
attributes of what it made. Images become links: an answer must not make a staff browser
fetch an address a model or a page chose.
"""

import re
from html import escape, unescape

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "a",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}


def _image_as_link(
    renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    src = escape(str(token.attrGet("src") or ""))
    return f'<a href="{src}">[{escape("image: " + alt)}]</a>'


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "breaks": True})
    parser.enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_link)
    return parser


_PARSER = _parser()


def markdown_to_safe_html(text: str) -> str:
    """HTML of `text` as Markdown, holding nothing that runs, loads or restyles the page."""
    return nh3.clean(
        _PARSER.render(text),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


def markdown_to_plain_text(text: str) -> str:
    """`text` as Markdown, read out as one line of plain words: for previews, where
    `**bold**` or `> ` would be noise."""
    words = nh3.clean(_PARSER.render(text), tags=set())
    return re.sub(r"\s+", " ", unescape(words)).strip()
