"""The built documentation site in a real browser (headless Chromium, through Selenium).

Slow, and needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``).
The site is built from ``docs/`` as ``make docs`` builds it, served on 127.0.0.1, and every
page of its sitemap is opened: it must load with its title and navigation, every image on it
must decode (a broken image has no natural width), and the search index must load in the page
and hold every page.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver "
                                 "(apt-get install chromium chromium-driver)")]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with --strict into a temporary folder and served over HTTP: its URL and
    its folder."""
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    build = subprocess.run([str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", out
    server.shutdown()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_every_page_loads_and_its_images_decode(site, browser) -> None:
    url, folder = site
    paths = sorted(str(p.parent.relative_to(folder)) + "/" for p in folder.rglob("index.html")
                   if "assets" not in p.parts)
    paths = [p.removeprefix("./") for p in paths]
    assert len(paths) >= 20, paths
    images_seen = 0
    for path in paths:
        browser.get(url + path)
        assert browser.execute_script("return document.readyState") == "complete", path
        assert browser.title.endswith("auxrun"), (path, browser.title)
        assert browser.find_elements("css selector", "nav.md-nav"), f"{path}: no navigation"
        assert browser.find_elements("css selector", "article h1"), f"{path}: no page title"
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, f"{path}: images that do not decode: {broken}"
        images_seen += browser.execute_script("return document.querySelectorAll('article img').length")
    assert images_seen >= 2  # the report screenshot and the Table 2 figure


def test_the_search_index_loads_in_the_page_and_holds_every_page(site, browser) -> None:
    browser.get(site[0])
    index = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('search/search_index.json').then(r => r.json()).then(done, e => done(String(e)));")
    assert isinstance(index, dict), index
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    for page in ("", "getting-started/", "reference/config/", "strategies/surgery/", "papers/rcgrad/", "api/"):
        assert page in locations, page
    assert any("RCGrad" in doc.get("text", "") for doc in index["docs"])
