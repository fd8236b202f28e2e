"""The simulator's observation model: a random MLP per modality, then counts, values or peaks.

Also the simulator's independent random streams (:func:`stream_rng`), so that every component draws
from its own stream whatever the others do.
"""

from __future__ import annotations

import zlib

import numpy as np
import scipy.sparse as sp

from .._constants import LIKELIHOOD_KINDS, TARGET_SUM

N_HIDDEN = 32  # width of each modality's random MLP
_LEAK = 0.2  # h = tanh(a) + _LEAK * a: nonlinear, yet injective and non-saturating
LIBRARY_SIZE = 2000.0  # expected counts per cell of a count modality
_CHUNK_ENTRIES = 2**20  # cells x features generated at a time (8 MB per float64 array)

# independent random streams, so that e.g. changing shared_fraction leaves every draw unchanged
(
    STREAM_DESIGN,
    STREAM_EFFECTS,
    STREAM_MAPS,
    STREAM_BASELINE,
    STREAM_OBSERVE,
    STREAM_LABELS,
    STREAM_ORDER,
) = range(1, 8)


def stream_rng(seed: int, stream: int, name: str | None = None) -> np.random.Generator:
    key = [seed, stream] if name is None else [seed, stream, zlib.crc32(name.encode())]
    return np.random.default_rng(key)


def random_mlp(rng: np.random.Generator, n_latent: int, n_features: int) -> dict[str, np.ndarray]:
    return {
        "w1": rng.normal(0.0, 1.0 / np.sqrt(n_latent), (n_latent, N_HIDDEN)),
        "b1": rng.normal(0.0, 0.5, N_HIDDEN),
        "w2": rng.normal(0.0, 1.0 / np.sqrt(N_HIDDEN), (N_HIDDEN, n_features)),
    }


def _apply_mlp(params: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    a = z @ params["w1"] + params["b1"]
    return (np.tanh(a) + _LEAK * a) @ params["w2"]


class _CSRBuilder:
    """Rows of a CSR matrix appended chunk by chunk into preallocated arrays.

    The capacity is estimated from the first chunk's density with a generous margin: pages
    never written are never resident, so the margin costs address space, not memory. It grows
    (one copy) only if the estimate was too small.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.row_nnz = np.zeros(shape[0], dtype=np.int64)
        self.indices: np.ndarray | None = None
        self.data: np.ndarray | None = None
        self.pos = 0

    def append(self, start: int, block: np.ndarray) -> None:
        """Add the dense rows ``start:start + len(block)`` (their non-zero entries)."""
        n, p = self.shape
        flat = np.flatnonzero(block)
        k = len(flat)
        if self.indices is None:
            density = min(1.0, 1.3 * k / max(block.size, 1) + 0.01)
            capacity = int(density * n * p) + k
            self.indices = np.empty(capacity, dtype=np.int32)
            self.data = np.empty(capacity, dtype=np.float32)
        if self.pos + k > len(self.indices):
            capacity = max(int(1.25 * len(self.indices)), self.pos + k)
            for name in ("indices", "data"):
                grown = np.empty(capacity, dtype=getattr(self, name).dtype)
                grown[: self.pos] = getattr(self, name)[: self.pos]
                setattr(self, name, grown)
        self.indices[self.pos : self.pos + k] = flat % p
        self.data[self.pos : self.pos + k] = block.ravel()[flat]
        self.row_nnz[start : start + len(block)] = np.count_nonzero(block, axis=1)
        self.pos += k

    def finish(self) -> sp.csr_matrix:
        """The CSR matrix (float32 data, int32 indices)."""
        if self.indices is None:
            return sp.csr_matrix(self.shape, dtype=np.float32)
        indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        np.cumsum(self.row_nnz, out=indptr[1:])
        if indptr[-1] < 2**31:
            indptr = indptr.astype(np.int32)
        indices, data = self.indices[: self.pos], self.data[: self.pos]
        self.indices = self.data = None
        return sp.csr_matrix((data, indices, indptr), shape=self.shape, copy=False)


def observe(
    mlp: dict[str, np.ndarray],
    z: np.ndarray,
    likelihood: str,
    noise: float,
    seed: int,
    name: str,
) -> tuple[np.ndarray | sp.csr_matrix, sp.csr_matrix | None]:
    """Draw observations for the states ``z`` (rows in final order); returns ``(X, counts)``.

    Per-feature and per-cell parameters come from the modality's observation stream; draws per
    entry come from one stream per stage (noise, gamma, Poisson, dropout), consumed in cell
    order chunk by chunk, so the result does not depend on the chunk size. Count and binary
    modalities are built as CSR chunk by chunk; no dense cells x features matrix is formed.
    """
    n, p = len(z), mlp["w2"].shape[1]
    kind = LIKELIHOOD_KINDS[likelihood]
    rng = stream_rng(seed, STREAM_OBSERVE, name)

    def stage(label: str) -> np.random.Generator:
        return stream_rng(seed, STREAM_OBSERVE, f"{name}:{label}")

    step = max(1, _CHUNK_ENTRIES // p)
    chunks = [(s, min(n, s + step)) for s in range(0, n, step)]
    if kind == "continuous":
        offset = rng.normal(0.0, 1.0, p)
        draws = stage("noise")
        x = np.empty((n, p), dtype=np.float32)
        for s, e in chunks:
            x[s:e] = _apply_mlp(mlp, z[s:e]) + offset + noise * draws.standard_normal((e - s, p))
        return x, None
    out = _CSRBuilder((n, p))
    if kind == "binary":
        offset = rng.normal(-2.0, 0.5, p)
        draws = stage("uniform")
        for s, e in chunks:
            prob = 1.0 / (1.0 + np.exp(-(2.0 * _apply_mlp(mlp, z[s:e]) + offset)))
            out.append(s, (draws.random((e - s, p)) < prob).astype(np.float32))
        x = out.finish()
        return x, sp.csr_matrix((x.data.copy(), x.indices, x.indptr), shape=(n, p), copy=False)
    sd = 1.0
    log_base = np.log(LIBRARY_SIZE / p) - sd**2 / 2 + sd * rng.standard_normal(p)
    log_lib = 0.3 * rng.standard_normal(n)
    theta = None
    if likelihood in ("nb", "zinb") and noise > 0:
        theta = 1.0 / (noise * np.exp(0.5 * rng.standard_normal(p)))
    dropout = None
    if likelihood == "zinb":
        dropout = 1.0 / (1.0 + np.exp(-rng.normal(-1.5, 0.5, p)))
    gamma, poisson, uniform = stage("gamma"), stage("poisson"), stage("dropout")
    for s, e in chunks:
        mu = np.exp(_apply_mlp(mlp, z[s:e]) + log_base + log_lib[s:e, None])
        if theta is not None:
            mu = gamma.gamma(theta, mu / theta)
        counts = poisson.poisson(mu)
        del mu
        if dropout is not None:
            counts[uniform.random((e - s, p)) < dropout] = 0
        out.append(s, counts)
        del counts
    counts = out.finish()
    # X = log1p(counts normalised to TARGET_SUM per cell), with the same sparsity pattern
    total = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(TARGET_SUM, total, out=np.zeros(n), where=total > 0).astype(np.float32)
    xdata = np.empty_like(counts.data)
    for s, e in chunks:
        lo, hi = counts.indptr[s], counts.indptr[e]
        rows = np.repeat(scale[s:e], np.diff(counts.indptr[s : e + 1]))
        np.log1p(counts.data[lo:hi] * rows, out=xdata[lo:hi])
    x = sp.csr_matrix((xdata, counts.indices, counts.indptr), shape=(n, p), copy=False)
    return x, counts
