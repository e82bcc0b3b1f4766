"""MkDocs hook (mkdocs.yml ``hooks:``): the Integrations section lists docs/integrations/ itself.

A navigation entry whose value is a directory ending in ``/`` (``Integrations:
integrations/``) becomes one entry per page in that directory, titled by the
page's first heading, sorted by file name; an empty or missing directory drops
the entry. Every other entry is left as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Union

NavItem = Union[str, Dict[str, Any]]


def _title(page: Path) -> str:
    found = re.search(r"^# (.+)$", page.read_text(encoding="utf-8"), re.M)
    return found.group(1).strip() if found else page.stem


def _expand(items: List[NavItem], docs_dir: Path) -> List[NavItem]:
    expanded: List[NavItem] = []
    for item in items:
        if not isinstance(item, dict):
            expanded.append(item)
            continue
        ((title, value),) = item.items()
        if isinstance(value, list):
            expanded.append({title: _expand(value, docs_dir)})
        elif isinstance(value, str) and value.endswith("/"):
            pages = sorted((docs_dir / value).glob("*.md"))
            if pages:
                expanded.append({title: [{_title(p): p.relative_to(docs_dir).as_posix()} for p in pages]})
        else:
            expanded.append(item)
    return expanded


def on_config(config: Any) -> Any:
    if config["nav"]:
        config["nav"] = _expand(config["nav"], Path(config["docs_dir"]))
    return config
