"""Unpacking an uploaded image folder (a zip or tar of class folders) without trusting it.

Every member is checked before a byte is written: no absolute name, drive letter, backslash or ``..`` part
(path traversal), no symlink, hard link or device in a tar, no zip entry marked as a symlink, only image
files (``IMAGE_EXTENSIONS``), at most ``max_images`` of them and at most ``max_bytes`` in all as the archive
declares them; the bytes actually written are counted again, so a zip whose headers understate the sizes
(a zip bomb) stops at the same limit. Finder's ``__MACOSX/`` and dot files are skipped. The same member
checks serve files listed under an S3 prefix (:func:`check_member`).
"""
from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO


#: The file names an image folder may hold (also what :func:`analysis.datasets.folder_benchmark.scan_image_folder`
#: reads); kept here, free of torch, so a web process can check an archive without loading it.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(ValueError):
    """An archive refused; the message names the member and the rule it breaks."""


def skipped(name: str) -> bool:
    """Whether a member is operating-system clutter left out silently (``__MACOSX/``, dot files)."""
    return any(part == "__MACOSX" or (part.startswith(".") and part not in (".", ".."))
               for part in PurePosixPath(name).parts)


def check_member(name: str) -> tuple[str, ...]:
    """The parts of a member's relative name; refuses a name that could lead outside the folder."""
    if (not name or name.startswith("/") or _DRIVE.match(name) or "\\" in name
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)):
        raise ArchiveError(f"{name!r} is not a plain relative name (absolute, a drive, a backslash or a control "
                           "character): refused as a path traversal")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"{name!r} leads outside the folder ('..'): refused as a path traversal")
    return parts


def check_image_name(name: str) -> None:
    if PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
        raise ArchiveError(f"{name!r} is not an image file: only {', '.join(sorted(IMAGE_EXTENSIONS))} "
                           "files may be in the folder")


class Limits:
    """Running image count and byte total, refused past ``max_images`` / ``max_bytes``."""

    def __init__(self, max_images: int, max_bytes: int) -> None:
        self.max_images, self.max_bytes = max_images, max_bytes
        self.images = self.bytes = 0

    def add_image(self, name: str, declared: int) -> None:
        self.images += 1
        if self.images > self.max_images:
            raise ArchiveError(f"more than {self.max_images} images (SALIENT_UPLOAD_MAX_IMAGES)")
        self.add_bytes(declared, name)

    def add_bytes(self, count: int, name: str) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise ArchiveError(f"the images take more than {self.max_bytes / 2**20:.0f} MB uncompressed (at {name!r}; "
                               "SALIENT_UPLOAD_MAX_DATASET_MB)")


def copy_limited(source: BinaryIO, target: Path, limits: Limits, name: str) -> None:
    """Copy ``source`` into the new file ``target`` in chunks, counting the bytes against ``limits``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            limits.add_bytes(len(chunk), name)
            out.write(chunk)


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[str, int, Callable[[], BinaryIO]]]:
    for info in archive.infolist():
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveError(f"{info.filename!r} is a symbolic link: links are refused")
        if not info.is_dir():
            yield info.filename, info.file_size, lambda info=info: archive.open(info)


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[str, int, Callable[[], BinaryIO]]]:
    for member in archive.getmembers():
        if member.issym() or member.islnk():
            raise ArchiveError(f"{member.name!r} is a {'symbolic' if member.issym() else 'hard'} link "
                               f"(to {member.linkname!r}): links are refused")
        if member.isdir():
            continue
        if not member.isfile():
            raise ArchiveError(f"{member.name!r} is not a regular file (a device or a pipe)")
        yield member.name, member.size, lambda member=member: archive.extractfile(member)


def extract_image_archive(path: str | os.PathLike, dest: str | os.PathLike, *, max_images: int,
                          max_bytes: int) -> int:
    """Unpack the zip or tar (plain, gz, bz2, xz) at ``path`` into the empty folder ``dest``; the image count.

    Every member is checked (see the module) before anything is written; a refusal raises
    :class:`ArchiveError` and leaves whatever was written for the caller to remove with ``dest``.
    """
    dest = Path(dest)
    inside = dest.resolve()
    if zipfile.is_zipfile(path):
        opened = zipfile.ZipFile(path)
        members = _zip_members
    else:
        try:
            opened = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError("the file is neither a zip nor a tar archive (.zip, .tar, .tar.gz, .tgz, .tar.bz2, "
                               ".tar.xz)") from exc
        members = _tar_members
    with opened as archive:
        try:
            listed = [(name, size, open_) for name, size, open_ in members(archive)
                      if check_member(name) and not skipped(name)]
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise ArchiveError(f"the archive is damaged: {exc}") from exc
        declared = Limits(max_images, max_bytes)
        for name, size, _ in listed:
            check_image_name(name)
            declared.add_image(name, size)
        if not listed:
            raise ArchiveError("the archive holds no image")
        written = Limits(max_images, max_bytes)
        for name, _, open_ in listed:
            target = inside.joinpath(*check_member(name))
            if not target.resolve().is_relative_to(inside):
                raise ArchiveError(f"{name!r} leads outside the folder: refused as a path traversal")
            try:
                with open_() as source:
                    copy_limited(source, target, written, name)
            except FileExistsError as exc:
                raise ArchiveError(f"{name!r} is in the archive twice") from exc
            except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
                raise ArchiveError(f"{name!r} cannot be unpacked: {exc}") from exc
    return len(listed)


def image_folder_layout(dest: str | os.PathLike) -> tuple[Path, Path | None]:
    """``(root, val_root)`` of an unpacked folder: class folders at the top, or ``train/`` (+ ``val/``), either
    possibly inside one wrapping folder (a zipped folder). Images outside a class folder are refused."""
    top = Path(dest)
    for _ in range(2):
        entries = [p for p in top.iterdir() if not p.name.startswith(".")]
        names = {p.name for p in entries if p.is_dir()}
        if "train" in names and names <= {"train", "val"} and len(entries) == len(names):
            return top / "train", (top / "val" if "val" in names else None)
        loose = sorted(p.name for p in entries if p.is_file())
        if loose:
            raise ArchiveError(f"{loose[0]!r} lies outside a class folder: put each class's images in a folder "
                               "named for the class")
        if len(entries) == 1 and all(p.is_dir() for p in entries[0].iterdir()):
            top = entries[0]  # one wrapping folder holding only folders: the zipped folder itself
            continue
        break
    return top, None
