"""``auxrun data download NAME`` and ``dataset.download=true``: the published files of a
dataset, fetched with pooch (streamed to a temporary file, checked, then moved into place:
a failed, corrupted or interrupted transfer never leaves a file where the loader looks),
with retries and a progress bar, into the folder the loader reads.

Every failure is one :class:`~auxrun.errors.AuxrunError` naming the file, what went wrong and
what to do by hand (the URL and the folder), so an offline machine gets one line.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from ..errors import AuxrunError
from .sources import SOURCES, Remote, Source

log = logging.getLogger(__name__)


def source(name: str) -> Source:
    """The :class:`Source` of dataset ``name``, or one message listing the datasets."""
    try:
        return SOURCES[name]
    except KeyError:
        raise AuxrunError(f"unknown dataset {name!r}; available: {', '.join(sorted(SOURCES))}") from None


def where_published(name: str) -> str:
    """A short phrase saying where ``name``'s files are published."""
    src = SOURCES.get(name)
    return f"published in {src.origin}" if src is not None else "see its documentation"


def dataset_folder(cfg, name: str) -> Path:
    """Where dataset ``name`` is read from: ``dataset.data_dir`` (default ``data/NAME``)."""
    return Path(str(cfg.get("data_dir") or f"data/{name}")).expanduser()


def fetch_missing(cfg, name: str, folder: Path, paths) -> bool:
    """With ``dataset.download=true`` and any of ``paths`` missing, download ``name``'s
    published files into ``folder`` (:func:`download`); returns whether it did."""
    if not cfg.get("download") or all(Path(p).is_file() for p in paths):
        return False
    download(name, folder)
    return True


def needed(src: Source) -> list[str]:
    """The files (below the dataset's folder) the loader reads."""
    return list(src.needs) or [f.path for f in src.files]


def locate(layouts: tuple[str, ...], folder: str | Path, relative: str) -> Path | None:
    """The file the loader reads for the needed file ``relative`` below ``folder``: the first of
    ``layouts`` (a :class:`Source`'s, e.g. ``sources.CHEM_DATASET_LAYOUTS``) that is a file, or
    ``None``."""
    plain = relative[:-3] if relative.endswith(".gz") else relative
    for pattern in layouts:
        path = Path(folder) / pattern.format(file=relative, plain=plain)
        if path.is_file():
            return path
    return None


def present(name: str, folder: str | Path) -> bool:
    """Whether the files ``name``'s loader reads are in ``folder``, in any of the source's
    layouts (packages: installed; generated data: always)."""
    src = source(name)
    if src.kind == "package":
        import importlib.metadata

        try:
            importlib.metadata.distribution(src.package)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True
    if src.kind == "generated":
        return True
    return all(locate(src.layouts, folder, f) is not None for f in needed(src))


def git_blob_sha1(path: Path) -> str:
    """The SHA-1 git gives a file's content: ``sha1(b"blob <size>\\0" + content)``."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, folder: str | Path, retries: int = 3, progress: bool = True,
             mirror: str | None = None) -> list[Path]:
    """Fetch ``name``'s published files into ``folder`` (skipping what is there already)
    and return the paths the loader reads. ``mirror``: a URL of a folder holding the files
    under their published names, fetched instead of the published location (same checksums)."""
    import pooch

    src = source(name)
    folder = Path(folder).expanduser()
    address = urlparse(mirror or "")
    if mirror is not None and (address.scheme not in ("http", "https") or not address.netloc):
        raise AuxrunError(f"mirror {mirror!r}: expected the http:// or https:// address of a folder that holds the "
                          "files under their published names")
    if src.kind == "manual":
        raise AuxrunError(f"dataset={name} cannot be downloaded automatically: {src.how} ({folder}/"
                          f"{', '.join(needed(src))}). Source: {src.origin}")
    if src.kind != "download":
        raise AuxrunError(f"dataset={name} needs no download: it comes from {src.origin} ({src.kind})")
    if present(name, folder):
        log.info("%s: the files are in %s already", name, folder)
        return [locate(src.layouts, folder, f) for f in needed(src)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuxrunError(f"cannot create {folder} for dataset={name}: {exc.strerror}") from None
    urls = [f"{mirror.rstrip('/')}/{r.url.rsplit('/', 1)[-1]}" if mirror else r.url for r in src.files]
    by_hand = f"fetch {' and '.join(urls)} by hand into {folder}"
    for remote, url in zip(src.files, urls):
        _fetch(pooch, name, remote, url, folder, retries, progress, by_hand)
    missing = [f for f in needed(src) if not (folder / f).is_file()]
    if missing:
        raise AuxrunError(f"dataset={name}: after the download, {', '.join(missing)} is still missing in {folder}; "
                          f"the published archive may have changed")
    return [folder / f for f in needed(src)]


def _fetch(pooch, name: str, remote: Remote, url: str, folder: Path, retries: int, progress: bool,
           by_hand: str) -> None:
    """One file through pooch (temporary file, SHA-256 check, move), its git blob checked
    where that is the checksum we have, its members extracted where it is an archive."""
    import requests

    staging = folder / ".download" if remote.members is not None else folder
    known = f"sha256:{remote.sha256}" if remote.sha256 else f"md5:{remote.md5}" if remote.md5 else None
    fetcher = pooch.create(path=staging, base_url="", registry={remote.path: known}, urls={remote.path: url},
                           retry_if_failed=retries)
    try:
        got = Path(fetcher.fetch(remote.path, downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60)))
    except ValueError as exc:  # pooch's checksum mismatch
        kind = "SHA-256" if remote.sha256 else "MD5"
        raise AuxrunError(f"dataset={name}: {url} did not match its published {kind} (a changed or damaged "
                          f"file; nothing was kept). {str(exc).splitlines()[0]}") from None
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else exc
        raise AuxrunError(f"dataset={name}: {url} answered HTTP {status}; nothing was kept. Check the address, "
                          f"or {by_hand}") from None
    except requests.exceptions.RequestException as exc:
        host = urlparse(url).netloc or url
        raise AuxrunError(f"dataset={name}: the transfer from {host} failed ({type(exc).__name__}); nothing was "
                          f"kept. Run the command again, or (offline) {by_hand}") from None
    except OSError as exc:
        raise AuxrunError(f"dataset={name}: cannot write {exc.filename or folder}: {exc.strerror}") from None
    if remote.git_blob and git_blob_sha1(got) != remote.git_blob:
        got.unlink()
        raise AuxrunError(f"dataset={name}: {url} did not match its published git blob id {remote.git_blob} "
                          "(a changed or damaged file; nothing was kept)")
    if remote.members is not None:
        _extract(name, got, remote.members, folder)
        shutil.rmtree(staging, ignore_errors=True)


def _extract(name: str, archive: Path, prefix: str, folder: Path) -> None:
    """The members of a zip ``archive`` whose names start with ``prefix``, into ``folder``
    without that prefix; each member goes to a temporary name first, then into place."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            if not members:
                raise AuxrunError(f"dataset={name}: {archive.name} holds nothing under {prefix!r}")
            for member in members:
                rel = Path(member.filename[len(prefix):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise AuxrunError(f"dataset={name}: {archive.name} holds an unsafe path {member.filename!r}")
                dest = folder / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.tmp")
                try:
                    with zf.open(member) as src, tmp.open("wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    tmp.replace(dest)
                finally:
                    tmp.unlink(missing_ok=True)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise AuxrunError(f"dataset={name}: {archive.name} is not a readable zip archive ({exc})") from None
