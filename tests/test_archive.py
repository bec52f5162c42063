"""Safe extraction of untrusted archives (hourglass.data.archive): members mapped under their prefix, an old
extraction replaced, and every hostile member (paths escaping the target, links leaving it, devices,
duplicates) refused with its reason."""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from archive_files import leftovers, make_tar

from hourglass.data.archive import UnsafeArchiveError, safe_extract


def tar_link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def make_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """``(name, data, unix mode)``; mode 0 leaves external_attr unset like Windows zips."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_tar_members_under_the_prefix_land_in_images(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "mpii.tar.gz", [
        ("images/001.jpg", b"one"), ("images/sub/002.jpg", b"two"), ("README", b"skipped"),
        tar_link("images/003.jpg", "001.jpg"),
        tar_link("images/004.jpg", "images/sub/002.jpg", tarfile.LNKTYPE),
    ])
    target = tmp_path / "mpii" / "images"
    result = safe_extract(archive, target, "images/")
    assert (result.files, result.skipped) == (4, 1)
    assert (target / "001.jpg").read_bytes() == b"one"
    assert (target / "sub" / "002.jpg").read_bytes() == b"two"
    assert (target / "003.jpg").is_symlink() and (target / "003.jpg").read_bytes() == b"one"
    assert (target / "004.jpg").read_bytes() == b"two"
    assert leftovers(target.parent) == ["images"]  # no temporary directory left


def test_zip_prefix_mapping_and_replacing_an_old_extraction(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "FLIC.zip", [
        ("FLIC/", b"", stat.S_IFDIR | 0o755), ("FLIC/images/", b"", 0), ("FLIC/images/a.jpg", b"A", 0),
        ("FLIC/examples.mat", b"M", stat.S_IFREG | 0o644),
        ("FLIC/images/l.jpg", b"a.jpg", stat.S_IFLNK | 0o777),
    ])
    target = tmp_path / "flic" / "images"
    target.mkdir(parents=True)
    (target / "old.jpg").write_bytes(b"from an earlier run")
    result = safe_extract(archive, target, "FLIC/images/")
    assert (result.files, result.skipped) == (2, 1)
    assert sorted(p.name for p in target.iterdir()) == ["a.jpg", "l.jpg"]
    assert (target / "l.jpg").read_bytes() == b"A"
    assert leftovers(target.parent) == ["images"]


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


# case -> (members added after a harmless one, the reason the refusal must give)
HOSTILE_TAR = {
    "parent": ([("../evil", b"x")], "'../evil' contains '..'"),
    "nested-parent": ([("images/../../evil", b"x")], "contains '..'"),
    "absolute": ([("/tmp/hourglass-test-evil", b"x")], "has an absolute path"),
    "symlink-to-etc": ([tar_link("images/etc", "/etc")], "is a link to the absolute path '/etc'"),
    "symlink-up": ([tar_link("images/up", "../../evil")], "is a link leaving the target"),
    "symlink-leaves-target-after-prefix-strip": ([("README", b"r"), tar_link("images/r", "../README")],
                                                 "'images/r' is a link leaving the target"),
    "hardlink-outside": ([tar_link("images/pw", "/etc/passwd", tarfile.LNKTYPE)],
                         "'images/pw' is a hard link to '/etc/passwd' outside the archive"),
    "hardlink-outside-prefix": ([("README", b"r"), tar_link("images/r", "README", tarfile.LNKTYPE)],
                                "'images/r' is a hard link to 'README' outside 'images'"),
    "device": ([device("images/dev")], "'images/dev' is a device"),
}

HOSTILE_ZIP = {
    "parent": ([("../evil", b"x", 0)], "'../evil' contains '..'"),
    "backslash-parent": ([("images\\..\\..\\evil", b"x", 0)], "contains '..'"),
    "absolute": ([("/tmp/hourglass-test-evil", b"x", 0)], "has an absolute path"),
    "drive-letter": ([("C:/evil", b"x", 0)], "has an absolute path"),
    "symlink-to-etc": ([("images/etc", b"/etc", stat.S_IFLNK | 0o777)],
                       "is a link to the absolute path '/etc'"),
    "symlink-up": ([("images/up", b"../../evil", stat.S_IFLNK | 0o777)], "is a link leaving the target"),
    "device": ([("images/dev", b"", stat.S_IFCHR | 0o644)], "'images/dev' is a device"),
    "duplicate": ([("images/ok.jpg", b"again", 0)], "'images/ok.jpg' occurs twice"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TAR))
def test_hostile_tar_is_refused(tmp_path: Path, case: str) -> None:
    members, reason = HOSTILE_TAR[case]
    archive = make_tar(tmp_path / "evil.tar.gz", [("images/ok.jpg", b"fine"), *members])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match=re.escape(str(archive)) + ".*" + re.escape(reason)):
        safe_extract(archive, out / "images", "images/")
    assert leftovers(out) == []  # the harmless member extracted first went away with the temporary directory
    assert not (tmp_path / "evil").exists() and not Path("/tmp/hourglass-test-evil").exists()


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(HOSTILE_ZIP))
def test_hostile_zip_is_refused(tmp_path: Path, case: str) -> None:
    members, reason = HOSTILE_ZIP[case]
    archive = make_zip(tmp_path / "evil.zip", [("images/ok.jpg", b"fine", 0), *members])
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "keep.jpg").write_bytes(b"earlier extraction")
    with pytest.raises(UnsafeArchiveError, match=re.escape(str(archive)) + ".*" + re.escape(reason)):
        safe_extract(archive, out / "images", "images/")
    assert leftovers(out) == ["images"] and leftovers(out / "images") == ["keep.jpg"]  # untouched
    assert not (tmp_path / "evil").exists() and not Path("/tmp/hourglass-test-evil").exists()


def test_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.tar.gz").write_bytes(b"<html>login page</html>")
    with pytest.raises(UnsafeArchiveError, match="neither a tar nor a zip"):
        safe_extract(tmp_path / "x.tar.gz", tmp_path / "images", "images/")
