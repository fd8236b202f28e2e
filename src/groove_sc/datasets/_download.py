"""Public dataset files: where they come from, their pinned hashes, the cache and the fetch.

A file is looked up in the cache directory (:func:`cache_dir`) first and downloaded with pooch
only when allowed; when it can be neither, :class:`DatasetNotAvailableError` says where to get
it and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Environment variable that overrides the default cache directory.
DATA_ENV = "GROOVE_SC_DATA"


@dataclass(frozen=True)
class _Remote:
    """One public file: where it lives, what it should hash to, and where it comes from."""

    fname: str
    url: str
    known_hash: str | None
    size: str  # as recorded by the source, empty when unknown
    record: str


# Papalexi et al. 2021, ECCITE-seq of THP-1 cells, the MuData distributed by pertpy.
# MD5 taken from a public download script that checks this figshare file with `md5sum --check`;
# it was not re-computed here (no network where this package was written).
_PAPALEXI = _Remote(
    fname="papalexi_2021.h5mu",
    url="https://figshare.com/ndownloader/files/36509460",
    known_hash="md5:419ec1f14615b4423edd6f16b65c55a7",
    size="",
    record="figshare file 36509460 (the MuData that pertpy.data.papalexi_2021 downloads)",
)

# Frangieh et al. 2021, Perturb-CITE-seq, scPerturb release (Peidli et al. 2024), Zenodo 13350497.
# SHA-256 of the protein file is recorded by two independent public manifests (one of them for
# this Zenodo record, 24,714,445 bytes); that of the RNA file by one. Neither was re-computed here.


def _scperturb(fname: str, known_hash: str, size: str = "") -> _Remote:
    """A file of the scPerturb release on Zenodo (record 13350497)."""
    return _Remote(
        fname=fname,
        url=f"https://zenodo.org/records/13350497/files/{fname}?download=1",
        known_hash=known_hash,
        size=size,
        record="scPerturb, Zenodo record 13350497",
    )


_FRANGIEH_RNA = _scperturb(
    "FrangiehIzar2021_RNA.h5ad",
    "sha256:cc42ef38bcf703a00e0c77c7945dd53159b12d814c438ae8afeaed9bc71f48d1",
)
_FRANGIEH_PROT = _scperturb(
    "FrangiehIzar2021_protein.h5ad",
    "sha256:1f85827b5afad11a30d8ac99399772231110a1c3723bed6ecf7981a12cc3dbcc",
    "24,714,445 bytes",
)

PINNED = "pinned"


class DatasetNotAvailableError(FileNotFoundError):
    """A dataset file is neither in the cache nor downloadable (offline, or download refused).

    The message names the file, the URL to fetch it from, and the path to put it at.
    """


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Directory where groove_sc keeps downloaded datasets.

    Parameters
    ----------
    path
        Explicit directory. When ``None``: the ``GROOVE_SC_DATA`` environment variable when set,
        otherwise the user cache directory (``~/.cache/groove_sc`` on Linux).

    Returns
    -------
    The directory (not created).

    Examples
    --------
    >>> import groove_sc as gs
    >>> gs.datasets.cache_dir("/tmp/groove_data")
    PosixPath('/tmp/groove_data')

    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("groove_sc"))


def _manual_hint(remote: _Remote, target: Path) -> str:
    return (
        f"Download '{remote.fname}' ({remote.size + '; ' if remote.size else ''}{remote.record}) "
        "by hand from\n"
        f"    {remote.url}\n"
        f"and save it as\n"
        f"    {target}\n"
        f"(or put it in another directory and pass data_dir=... or set ${DATA_ENV})."
    )


def _resolve_hash(remote: _Remote, known_hash: str | Mapping[str, str | None] | None) -> str | None:
    if known_hash is None:
        return None
    if isinstance(known_hash, str):
        return remote.known_hash if known_hash == PINNED else known_hash
    return known_hash.get(remote.fname, remote.known_hash)


def _fetch(remote: _Remote, directory: Path, known_hash: str | None, download: bool) -> Path:
    """Return the path of ``remote`` in ``directory``, downloading it when absent."""
    from pooch.hashes import file_hash, hash_algorithm, hash_matches

    target = directory / remote.fname
    if target.exists():
        if known_hash is not None and not hash_matches(str(target), known_hash):
            alg = hash_algorithm(known_hash)
            raise ValueError(
                f"The {alg} checksum of {target} is {file_hash(str(target), alg=alg)}, not the "
                f"pinned {known_hash}: the file is incomplete, corrupted or a different version. "
                f"Delete it to download it again, or pass known_hash=None to skip the check "
                f"(at your own risk).\n" + _manual_hint(remote, target)
            )
        return target
    if not download:
        raise DatasetNotAvailableError(
            f"'{remote.fname}' is not in {directory} and download=False.\n"
            + _manual_hint(remote, target)
        )
    import pooch

    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = pooch.retrieve(
            remote.url, known_hash=known_hash, fname=remote.fname, path=directory, progressbar=False
        )
    except ValueError as err:  # pooch: downloaded file does not match the known hash
        raise ValueError(
            f"The downloaded '{remote.fname}' does not match the pinned checksum {known_hash} "
            f"({err}). The record may have changed; pass known_hash=None to accept it.\n"
            + _manual_hint(remote, target)
        ) from err
    except Exception as err:  # network errors (requests), HTTP errors, permissions
        raise DatasetNotAvailableError(
            f"Could not download '{remote.fname}' from {remote.url}: "
            f"{type(err).__name__}: {err}\n" + _manual_hint(remote, target)
        ) from err
    return Path(path)


# --------------------------------------------------------------------------------------------
# conversion helpers
# --------------------------------------------------------------------------------------------
