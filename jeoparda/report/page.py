"""report.html: report.md as one self-contained page, every plot embedded where report.md shows it
(a data URI: nothing to load from elsewhere, no script)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = ("body{font-family:sans-serif;max-width:72em;margin:2em auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}img{max-width:100%}")
IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def _table(lines: list[str]) -> str:
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines
             if not set(line.strip()) <= set("|-")]
    head, rest = cells[0], cells[1:]
    return ("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rest)
            + "</table>")


def _figure(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}"></figure>'


def to_html(markdown_text: str, plots: list[Path]) -> str:
    """The page: headings, paragraphs, bullets and tables of ``markdown_text``; its image lines
    replaced by the PNG of that name among ``plots``, embedded (an image not among them is left out)."""
    by_name = {p.name: p for p in plots}
    body: list[str] = []
    table: list[str] = []
    for line in markdown_text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            body.append(_table(table))
            table.clear()
        image = IMAGE.match(line)
        if image:
            if image.group(2) in by_name:
                body.append(_figure(by_name[image.group(2)]))
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>&bull; {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if table:
        body.append(_table(table))
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>jeoparda scaling report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
