"""Template helpers. Instructions are researcher-written Markdown, sanitised with nh3;
model samples never pass through here (they are always plain escaped text)."""
import markdown as md
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()

_ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "hr", "a", "table", "thead", "tbody", "tr", "th", "td"}


@register.filter
def instructions_html(body: str) -> str:
    html = md.markdown(body or "", extensions=["tables", "fenced_code"])
    return mark_safe(nh3.clean(html, tags=_ALLOWED_TAGS, attributes={"a": {"href", "title"}}, url_schemes={"http", "https", "mailto"}))  # noqa: S308 - sanitised above
