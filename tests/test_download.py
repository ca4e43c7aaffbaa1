"""auxrun data download: published files fetched from a local HTTP server on 127.0.0.1.

Tiny files in each published layout stand in for the real ones (which are never committed);
the sources are pointed at the local server with the tiny files' own checksums, so every path
of the real download runs: pooch's streaming into a temporary file, the SHA-256 or git-blob
check, archive extraction, and each failure's single message with nothing left behind.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import auxrun.data.sources as sources
from auxrun.data import read  # the loader's parsing: tiny files leave splits too small for a run
from auxrun.data.download import download, git_blob_sha1, present
from auxrun.data.sources import Remote, Source
from auxrun.errors import AuxrunError
from conftest import run_cli
from test_kgnn_ls import ITEMS, ROWS, TRIPLES, dataset_cfg, write_lastfm


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder; ``/cut/NAME`` promises NAME's full length, sends half, hangs up."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/cut/"):
            body = (Path(self.directory) / self.path[5:]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """(folder served, base URL) of a server on 127.0.0.1 for this test."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a: Handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lastfm_source(root: Path, base: str, **changes) -> Source:
    """lastfm's entry pointed at the local server, with the served files' own SHA-256."""
    names = ("user_artists.dat", "item_index2entity_id.txt", "kg.txt")
    files = tuple(Remote(f"{base}/{n}", n, sha256(root / n)) for n in names)
    return replace(sources.SOURCES["lastfm"], files=files, **changes)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_places_the_published_files_where_the_loader_reads_them(served, tmp_path, monkeypatch):
    root, base = served
    write_lastfm(root, ROWS, ITEMS, TRIPLES)
    monkeypatch.setitem(sources.SOURCES, "lastfm", lastfm_source(root, base))
    dest = tmp_path / "data" / "lastfm"
    assert not present("lastfm", dest)
    got = download("lastfm", dest, retries=0, progress=False)
    assert [p.name for p in got] == ["user_artists.dat", "item_index2entity_id.txt", "kg.txt"]
    assert all((dest / p.name).read_bytes() == (root / p.name).read_bytes() for p in got)
    assert present("lastfm", dest) and leftovers(dest) == sorted(p.name for p in got)
    (root / "kg.txt").unlink()  # a second call finds the files in place and fetches nothing
    download("lastfm", dest, retries=0, progress=False)
    data = read(dataset_cfg("lastfm", dest), seed=0)
    assert data.info["layout"] == "published" and data.info["stats"]["users"] == 3


def test_dataset_download_true_fetches_on_first_use(served, tmp_path, monkeypatch):
    root, base = served
    write_lastfm(root, ROWS, ITEMS, TRIPLES)
    monkeypatch.setitem(sources.SOURCES, "lastfm", lastfm_source(root, base))
    dest = tmp_path / "lastfm"
    with pytest.raises(AuxrunError, match="auxrun data download lastfm"):
        read(dataset_cfg("lastfm", dest), seed=0)
    data = read(dataset_cfg("lastfm", dest, download=True), seed=0)
    assert data.info["stats"]["interactions"] == 12 and present("lastfm", dest)


def test_a_checksum_mismatch_keeps_nothing(served, tmp_path, monkeypatch):
    root, base = served
    write_lastfm(root, ROWS, ITEMS, TRIPLES)
    src = lastfm_source(root, base)
    bad = (replace(src.files[0], sha256="0" * 64), *src.files[1:])
    monkeypatch.setitem(sources.SOURCES, "lastfm", replace(src, files=bad))
    dest = tmp_path / "lastfm"
    with pytest.raises(AuxrunError, match=r"user_artists.dat did not match its published SHA-256.*nothing was kept"):
        download("lastfm", dest, retries=1, progress=False)
    assert leftovers(dest) == []


def test_a_404_is_one_message_and_keeps_nothing(served, tmp_path, monkeypatch):
    root, base = served
    write_lastfm(root, ROWS, ITEMS, TRIPLES)
    files = (Remote(f"{base}/user_artists.dat", "user_artists.dat", sha256(root / "user_artists.dat")),
             Remote(f"{base}/moved/kg.txt", "kg.txt", sha256(root / "kg.txt")))
    monkeypatch.setitem(sources.SOURCES, "lastfm", replace(sources.SOURCES["lastfm"], files=files))
    dest = tmp_path / "lastfm"
    with pytest.raises(AuxrunError, match=r"moved/kg.txt answered HTTP 404; nothing was kept"):
        download("lastfm", dest, retries=0, progress=False)
    assert "kg.txt" not in leftovers(dest)


def test_an_interrupted_transfer_keeps_nothing(served, tmp_path, monkeypatch):
    root, base = served
    (root / "kg.txt").write_bytes(bytes(range(256)) * 400)
    files = (Remote(f"{base}/cut/kg.txt", "kg.txt", sha256(root / "kg.txt")),)
    monkeypatch.setitem(sources.SOURCES, "lastfm", replace(sources.SOURCES["lastfm"], files=files))
    dest = tmp_path / "lastfm"
    with pytest.raises(AuxrunError, match=r"the transfer from 127.0.0.1:\d+ failed.*nothing was kept.*by hand into"):
        download("lastfm", dest, retries=1, progress=False)
    assert leftovers(dest) == []


def test_git_blob_ids_identify_the_content(served, tmp_path, monkeypatch):
    root, base = served
    (root / "BX-Book-Ratings.csv").write_text('"User-ID";"ISBN";"Book-Rating"\n"1";"0002005018";"0"\n')
    blob = git_blob_sha1(root / "BX-Book-Ratings.csv")
    # the id git itself gives this content: sha1 over "blob <size>\0" + bytes
    data = (root / "BX-Book-Ratings.csv").read_bytes()
    assert blob == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    for good, expect in ((blob, None), ("f" * 40, "did not match its published git blob id")):
        files = (Remote(f"{base}/BX-Book-Ratings.csv", "BX-Book-Ratings.csv", git_blob=good),)
        monkeypatch.setitem(sources.SOURCES, "bookcrossing", replace(sources.SOURCES["bookcrossing"], files=files))
        dest = tmp_path / good[:4]
        if expect is None:
            download("bookcrossing", dest, retries=0, progress=False)
            assert (dest / "BX-Book-Ratings.csv").read_bytes() == data
        else:
            with pytest.raises(AuxrunError, match=expect):
                download("bookcrossing", dest, retries=0, progress=False)
            assert leftovers(dest) == []


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_archives_are_unpacked_into_the_loader_layout(served, tmp_path, monkeypatch):
    """reddit.zip holds its two files at the top; mag.zip holds mag/raw/..., read from raw/."""
    root, base = served
    reddit = {"reddit_data.npz": npz_bytes(feature=np.zeros((2, 3)), label=np.array([0, 1])),
              "reddit_graph.npz": b"graph"}
    (root / "reddit.zip").write_bytes(zip_of(reddit))
    mag = {"mag/raw/num-node-dict.csv.gz": b"n", "mag/raw/node-feat/paper/node-feat.csv.gz": b"f",
           "mag/split/time/paper/train.csv.gz": b"s"}
    (root / "mag.zip").write_bytes(zip_of(mag))
    for name, archive, prefix in (("reddit", "reddit.zip", ""), ("ogbn_mag", "mag.zip", "mag/")):
        files = (Remote(f"{base}/{archive}", archive, sha256(root / archive), members=prefix),)
        monkeypatch.setitem(sources.SOURCES, name, replace(sources.SOURCES[name], files=files))
    dest = tmp_path / "reddit"
    download("reddit", dest, retries=0, progress=False)
    assert leftovers(dest) == ["reddit_data.npz", "reddit_graph.npz"]  # the archive itself is not kept
    assert (dest / "reddit_graph.npz").read_bytes() == b"graph"
    dest = tmp_path / "ogbn_mag"
    monkeypatch.setitem(sources.SOURCES, "ogbn_mag", replace(sources.SOURCES["ogbn_mag"],
                                                             needs=("raw/num-node-dict.csv.gz",)))
    download("ogbn_mag", dest, retries=0, progress=False)
    assert leftovers(dest) == ["raw/node-feat/paper/node-feat.csv.gz", "raw/num-node-dict.csv.gz",
                               "split/time/paper/train.csv.gz"]


def test_an_archive_escaping_its_folder_is_refused(served, tmp_path, monkeypatch):
    root, base = served
    (root / "reddit.zip").write_bytes(zip_of({"../../evil.txt": b"x", "reddit_data.npz": b"d"}))
    files = (Remote(f"{base}/reddit.zip", "reddit.zip", sha256(root / "reddit.zip"), members=""),)
    monkeypatch.setitem(sources.SOURCES, "reddit", replace(sources.SOURCES["reddit"], files=files))
    with pytest.raises(AuxrunError, match="unsafe path"):
        download("reddit", tmp_path / "reddit", retries=0, progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_every_dataset_option_says_where_it_comes_from():
    from auxrun.configs import group_options

    assert set(group_options("dataset")) == set(sources.SOURCES)
    for name, src in sources.SOURCES.items():
        assert src.kind in ("download", "manual", "package", "generated") and src.origin and src.licence
        if src.kind == "download":
            assert src.files and all(f.sha256 or f.git_blob or f.md5 for f in src.files), name
            assert all(len(f.sha256 or "") in (0, 64) and len(f.git_blob or "") in (0, 40)
                       and len(f.md5 or "") in (0, 32) for f in src.files)
    with pytest.raises(AuxrunError, match="cannot be downloaded automatically.*Google Drive.*graph_CS.pk"):
        download("oag_cs", Path("unused"))
    with pytest.raises(AuxrunError, match="needs no download"):
        download("movielens", Path("unused"))


def test_cli_download_from_a_mirror_checks_the_published_checksums(served, tmp_path):
    """The tiny files are not the published ones: the real SHA-256 refuses them, exit 2."""
    root, base = served
    write_lastfm(root, ROWS, ITEMS, TRIPLES)
    proc = run_cli("data", "download", "lastfm", "--root", str(tmp_path / "data"), "--mirror", base,
                   "--retries", "0")
    assert proc.returncode == 2, proc.stderr
    assert "did not match its published SHA-256" in proc.stderr and "Traceback" not in proc.stderr
    assert leftovers(tmp_path / "data") == []
    listing = run_cli("data", "list", "--root", str(tmp_path / "data"))
    assert listing.returncode == 0
    assert "lastfm: auxrun data download lastfm; not here" in listing.stdout
    assert "oag_cs: by hand" in listing.stdout and "movielens: installed package recbole; here" in listing.stdout


def test_cli_download_offline_says_what_to_fetch_and_where(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: the connection is refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli("data", "download", "lastfm", "--root", str(tmp_path), "--mirror", f"http://127.0.0.1:{port}",
                   "--retries", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert "failed (ConnectionError)" in text and "by hand into" in text and "kg.txt" in text
    assert leftovers(tmp_path) == []


def test_download_help_names_exactly_the_datasets_with_published_files():
    """`auxrun data download --help` lists its names by hand (importing the sources would cost
    the CLI seconds at startup), so they are checked against the sources here."""
    import inspect
    import re

    from auxrun import cli
    from auxrun.data.sources import SOURCES

    text = inspect.signature(cli.data_download).parameters["name"].default.help
    named = set(re.findall(r"\b[a-z][a-z0-9_]+\b", text.split("e.g.", 1)[1]))
    assert named - {"and", "s"} == {n for n, s in SOURCES.items() if s.kind == "download"}


@pytest.mark.parametrize("mirror", ["notaurl", "ftp://127.0.0.1/x", "http://", "127.0.0.1:8000/files"])
def test_a_mirror_that_is_not_an_http_address_is_refused_before_any_transfer(mirror, tmp_path):
    """It was tried as a URL, and requests' refusal read as a checksum mismatch."""
    with pytest.raises(AuxrunError, match=r"expected the http:// or https:// address of a folder"):
        download("bbbp", tmp_path / "bbbp", retries=0, progress=False, mirror=mirror)
    assert not (tmp_path / "bbbp").exists()
