"""Safe extraction of untrusted archives (tar of any compression, zip).

Every member is checked (no absolute paths, no ``..``, no links leaving the target, no device files) and the whole
archive is refused on the first bad one; extraction goes to a temporary directory that is renamed into place only
when the archive has been read to the end.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target or is not a plain file/dir/link; names archive and member."""



@dataclass(frozen=True)
class ExtractResult:
    """How many members were extracted (files and links) and how many lay outside the member prefix."""

    files: int
    skipped: int


def safe_extract(archive: str | Path, target: str | Path, member_prefix: str = "") -> ExtractResult:
    """Extract the members of a tar (any compression) or zip under ``member_prefix`` into ``target``, without
    the prefix.

    Every member, extracted or not, must be a plain file, directory or link with a relative path free of
    ``..``; links must stay inside ``target``. The first bad member aborts with :class:`UnsafeArchiveError`
    and leaves ``target`` untouched: extraction happens in a temporary sibling directory that replaces
    ``target`` at the end.
    """
    archive, target = Path(archive), Path(target)
    prefix = _member_parts(archive, member_prefix) if member_prefix.strip("/") else ()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            result = _extract_zip(archive, tmp, prefix)
        elif tarfile.is_tarfile(archive):
            result = _extract_tar(archive, tmp, prefix)
        else:
            raise UnsafeArchiveError(f"{archive}: neither a tar nor a zip archive")
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """The path components of a member name, refusing absolute paths, drive letters, ``..`` and NUL."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'")
    if "\0" in unified:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains a NUL byte")
    return parts


def _strip(parts: tuple[str, ...], prefix: tuple[str, ...]) -> tuple[str, ...] | None:
    """``parts`` below ``prefix``, or None when the member lies outside it (or is the prefix directory)."""
    if parts[: len(prefix)] != prefix or len(parts) == len(prefix):
        return None
    return parts[len(prefix):]


def _check_symlink(archive: Path, name: str, where: tuple[str, ...], linkname: str) -> None:
    """A symlink at ``where`` (relative to its root) pointing to ``linkname`` must resolve inside the root."""
    unified = linkname.replace("\\", "/")
    if not unified or unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a link to the absolute path {linkname!r}")
    resolved = posixpath.normpath(posixpath.join(*where[:-1], unified))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a link leaving the target ({linkname!r})")


def _extract_tar(archive: Path, root: Path, prefix: tuple[str, ...]) -> ExtractResult:
    """Stream the tar once (a 12.9 GB .tar.gz is not decompressed twice); check each member before writing."""
    files = skipped = 0
    with tarfile.open(archive, mode="r|*") as tar:
        for member in tar:
            parts = _member_parts(archive, member.name)
            if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device or other special file")
            inside = _strip(parts, prefix) if parts else None
            link = member.linkname
            if member.issym():
                _check_symlink(archive, member.name, parts, link)
                if inside is not None:
                    _check_symlink(archive, member.name, inside, link)
            elif member.islnk():
                try:
                    link_parts = _member_parts(archive, link)
                except UnsafeArchiveError:
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a hard link to {link!r} "
                                             "outside the archive") from None
                link_inside = _strip(link_parts, prefix)
                if inside is not None and link_inside is None:
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a hard link to {link!r} "
                                             f"outside {'/'.join(prefix)!r}")
                link = "/".join(link_inside) if link_inside else link
            if inside is None:
                skipped += 0 if member.isdir() else 1
                continue
            renamed = member.replace(name="/".join(inside), linkname=link, deep=False)
            try:
                tar.extract(renamed, path=root, set_attrs=False, filter="data")
            except (tarfile.FilterError, tarfile.ExtractError, KeyError) as err:
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} refused: {err}") from None
            files += 0 if member.isdir() else 1
    return ExtractResult(files=files, skipped=skipped)


def _extract_zip(archive: Path, root: Path, prefix: tuple[str, ...]) -> ExtractResult:
    """Zip members: Unix mode bits in ``external_attr`` mark symlinks and special files."""
    files = skipped = 0
    real_root = os.path.realpath(root)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check everything first: the central directory makes this cost no extra read
            _check_zip_member(archive, zf, info, prefix)
        for info in infos:
            inside = _strip(_member_parts(archive, info.filename), prefix)
            if inside is None:
                skipped += 0 if info.is_dir() else 1
                continue
            dest = root.joinpath(*inside)
            parent = os.path.realpath(dest.parent)  # a directory reached through a link must stay inside
            if parent != real_root and not parent.startswith(real_root + os.sep):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} would land outside the target")
            if dest.exists() or dest.is_symlink():
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} occurs twice")
            mode = info.external_attr >> 16
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode("utf-8"), dest)
            else:
                with zf.open(info) as src, open(dest, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            files += 1
    return ExtractResult(files=files, skipped=skipped)


def _check_zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                      prefix: tuple[str, ...]) -> None:
    parts = _member_parts(archive, info.filename)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device or other special file")
    if stat.S_ISLNK(mode):
        linkname = zf.read(info).decode("utf-8", errors="replace")
        _check_symlink(archive, info.filename, parts, linkname)
        inside = _strip(parts, prefix)
        if inside is not None:
            _check_symlink(archive, info.filename, inside, linkname)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Replace ``target`` by ``tmp`` (rename cannot replace a non-empty directory: move the old one aside)."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is None:
        return
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()
