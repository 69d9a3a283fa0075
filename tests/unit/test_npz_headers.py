"""edgeprune.data.npz_headers: an .npz's array headers are read, and hostile ones refused, before any array."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeprune.data.loaders import load_npz
from edgeprune.data.npz_headers import check_npz_sizes, read_npz_headers
from edgeprune.errors import DataError


def _header_only_npz(path: Path, shape: tuple[int, ...], descr: str = "|u1") -> Path:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue())
    return path


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_headers_of_a_real_archive(tmp_path: Path, save) -> None:  # type: ignore[no-untyped-def]
    save(tmp_path / "d.npz", x=np.zeros((4, 8, 8, 3), np.uint8), y=np.arange(4), other=np.ones(3))
    headers = {h.name: h for h in read_npz_headers(tmp_path / "d.npz", ("x", "y", "label_names"))}
    assert set(headers) == {"x", "y"}  # only the arrays asked for, those present
    assert headers["x"].shape == (4, 8, 8, 3) and headers["x"].nbytes == 4 * 8 * 8 * 3
    assert headers["y"].nbytes == 4 * np.dtype(np.int64).itemsize
    assert load_npz(tmp_path / "d.npz").images.shape == (4, 8, 8, 3)


def test_an_archive_over_the_limit_is_refused_naming_file_and_size(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 16, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"d\.npz declares 0\.0 MiB of arrays \('x': \(4, 16, 16, 3\) uint8\), "
                                        r"over the limit of 0\.0 MiB"):
        check_npz_sizes(tmp_path / "d.npz", ("x",), limit=1000)


def test_a_header_declaring_286_gib_is_refused_before_loading(tmp_path: Path) -> None:
    """Issue 36: numpy would try to allocate the declared size (MemoryError)."""
    path = _header_only_npz(tmp_path / "huge.npz", (300000, 1000, 1024))
    with pytest.raises(DataError, match=r"huge\.npz declares 286\.1 GiB of arrays"):
        load_npz(path)


def test_a_header_larger_than_its_member_is_refused_as_forged(tmp_path: Path) -> None:
    path = _header_only_npz(tmp_path / "forged.npz", (10, 32, 32, 3))  # 30 KiB declared, no data follows
    with pytest.raises(DataError, match=r"forged\.npz: array 'x' declares \(10, 32, 32, 3\) uint8 .* truncated or forged"):
        load_npz(path)


def test_a_broken_header_is_one_line(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': nope}  \n")
    with pytest.raises(DataError, match=r"cannot read .*bad\.npz as an \.npz archive"):
        load_npz(tmp_path / "bad.npz")
