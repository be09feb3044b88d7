"""A change anywhere below a page gives the page new URLs, with no restart."""

from __future__ import annotations

import os
import re
from pathlib import Path

from server.static_files import StaticSite


def _touch(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def _page_version(site: StaticSite, name: str) -> str:
    page = site.asset("index.html")
    assert page is not None
    found = re.search(rf"/static/{name}\?v=([0-9a-f]+)", page.body.decode())
    assert found, page.body
    return found[1]


def test_a_changed_import_changes_the_versions_above_it(tmp_path: Path) -> None:
    (tmp_path / "ui").mkdir()
    _touch(tmp_path / "index.html", '<html><script src="/static/app.js" type="module">')
    _touch(tmp_path / "app.js", 'import { b } from "./ui/b.js";\nb();\n')
    _touch(tmp_path / "ui" / "b.js", 'import { c } from "../c.js";\nexport const b = c;\n')
    _touch(tmp_path / "c.js", "export const c = () => 1;\n")
    site = StaticSite(tmp_path)
    first = _page_version(site, "app.js")
    app = site.asset("app.js")
    assert app is not None and b'"./ui/b.js?v=' in app.body
    b = site.asset("ui/b.js")
    assert b is not None and b'"../c.js?v=' in b.body
    assert _page_version(site, "app.js") == first  # nothing changed: the same version

    _touch(tmp_path / "c.js", "export const c = () => 2;\n")
    assert _page_version(site, "app.js") != first


def test_an_import_cycle_is_served(tmp_path: Path) -> None:
    _touch(tmp_path / "a.js", 'import "./b.js";\n')
    _touch(tmp_path / "b.js", 'import "./a.js";\n')
    site = StaticSite(tmp_path)
    a = site.asset("a.js")
    assert a is not None and b'"./b.js?v=' in a.body


def test_the_module_and_its_types_are_served_as_what_they_are() -> None:
    site = StaticSite(Path(__file__).resolve().parents[2] / "static")
    module, types = site.asset("jobcast.mjs"), site.asset("jobcast.d.ts")
    assert module is not None and types is not None
    assert (module.media_type, types.media_type) == (
        "text/javascript; charset=utf-8",
        "text/plain; charset=utf-8",
    )
    # the module's imports are versioned, so a page that imports it gets new URLs on a change
    assert re.search(rb'import "\./jobcast\.base\.js\?v=[0-9a-f]+";', module.body)
    assert re.search(rb'import "\./jobcast\.js\?v=[0-9a-f]+";', module.body)
