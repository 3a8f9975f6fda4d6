"""mkdocs hook: pages under docs/ that mkdocs.yml's nav does not list still get
a place in the navigation, under "More", instead of being built unreachable.

Several people add pages to docs/ (observability.md, ...): a page added
without a nav entry is then still found, and the nav entry can follow.
"""
from __future__ import annotations

from mkdocs.structure.nav import Section
from mkdocs.structure.pages import Page


def on_nav(nav, config, files, **kwargs):
    listed = {page.file.src_uri for page in nav.pages}
    extra = []
    for file in files.documentation_pages():
        if file.src_uri not in listed:
            page = file.page if file.page is not None else Page(None, file, config)
            extra.append(page)
    if extra:
        section = Section("More", sorted(extra, key=lambda p: p.file.src_uri))
        for page in section.children:
            page.parent = section
        nav.items.append(section)
        nav.pages.extend(section.children)
    return nav
