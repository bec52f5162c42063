"""Archives and directory listings for the download and archive tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A .tar.gz at ``path`` of the given members: ready-made headers (links, devices) or (name, bytes) files."""
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def leftovers(directory: Path) -> list[str]:
    """The names in ``directory`` (none when it does not exist): what a failed extraction left behind."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []
