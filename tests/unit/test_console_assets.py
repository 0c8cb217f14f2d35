"""The console's static files: no markup sinks, no inline code, no outside origins, and every module
a page imports is one of the served files."""

from __future__ import annotations

import re

from services.query.calls import CHOICES
from services.query.console.router import ASSETS, STATIC

SINKS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
                   r"|setTimeout\(\s*['\"`]")
IMPORT = re.compile(r"""^import .* from "\./([\w.]+)";$""", re.MULTILINE)


def test_no_script_writes_markup_or_evaluates_text() -> None:
    for path in sorted(STATIC.glob("*.js")):
        assert not SINKS.search(path.read_text()), path.name


def test_the_page_has_no_inline_code_and_no_outside_origin() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/console/static/app.js">']
    assert "<style" not in page and " style=" not in page and " on" not in page.replace(" onl", "")
    for path in STATIC.iterdir():
        code = [line for line in path.read_text().splitlines() if not line.strip().startswith(("//", "*", "/*"))]
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", "\n".join(code)), path.name


def test_every_import_is_a_served_file() -> None:
    for path in sorted(STATIC.glob("*.js")):
        for name in IMPORT.findall(path.read_text()):
            assert name in ASSETS, f"{path.name} imports {name}"
    assert set(ASSETS) == {p.name for p in STATIC.iterdir() if p.is_file()}


def test_the_search_forms_choices_are_the_apis() -> None:
    code = (STATIC / "investigator.js").read_text()
    block = code[code.index("const CHOICES = {"):code.index("};", code.index("const CHOICES = {"))]
    for name, values in CHOICES.items():
        listed = re.search(rf"{name}: \[(.*?)\]", block, re.DOTALL)
        assert listed is not None, name
        assert re.findall(r'"([^"]*)"', listed.group(1)) == ["", *values], name
