"""Array backend for the solvers: numpy on CPU, torch on CPU or GPU, through POT's backend layer."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot

#: Blocks up to this many entries are processed with one BLAS thread on CPU.
SMALL_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class MemoryPolicy:
    """How one solve is cut to fit a device.

    Attributes
    ----------
    chunk_bytes
        Padded costs per solver call (a batch of groups of similar size).
    working_set_bytes
        Kernels iterated together (slots are refilled as groups finish).
    stream_above
        Groups with more source x target pairs than this are solved streamed, with no dense
        block (see ``_stream.py``).

    Examples
    --------
    >>> CPU_MEMORY.stream_above == 4096 * 4096
    True

    """

    chunk_bytes: int
    working_set_bytes: int
    stream_above: int


#: CPU: working sets sized for the caches; groups above 4096 x 4096 cells are streamed.
CPU_MEMORY = MemoryPolicy(256 * 2**20, 8 * 2**20, 2**24)
#: GPU: one tensor program over the whole batch; dense blocks of up to 4 GB (float32).
GPU_MEMORY = MemoryPolicy(2048 * 2**20, 2048 * 2**20, 2**30)


@dataclass
class ArrayOps:
    """The backend, device and floating dtype one alignment runs with.

    Attributes
    ----------
    name
        ``"numpy"`` or ``"torch"``.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (torch only for anything but ``"cpu"``).
    dtype
        ``"float32"`` or ``"float64"``.
    nx
        The POT backend object (``ot.backend.NumpyBackend`` / ``TorchBackend``).

    Examples
    --------
    >>> ops = resolve_backend("cpu", None, "float32")
    >>> ops.name
    'numpy'

    """

    name: str
    device: str
    dtype: str
    nx: Any

    def __post_init__(self) -> None:
        # empty arrays of the float and index dtypes on the device: ``type_as`` for ``nx``
        if self.name == "numpy":
            self._like, self._like_index = np.empty(0, self.dtype), np.empty(0, np.int64)
        else:
            import torch

            self._like = torch.empty(0, dtype=getattr(torch, self.dtype), device=self.device)
            self._like_index = torch.empty(0, dtype=torch.int64, device=self.device)

    @property
    def memory(self) -> MemoryPolicy:
        """The device's chunk, working-set and streaming sizes.

        Examples
        --------
        >>> resolve_backend("cpu").memory.chunk_bytes
        268435456

        """
        return CPU_MEMORY if self.device == "cpu" else GPU_MEMORY

    @property
    def itemsize(self) -> int:
        """Bytes per float.

        Examples
        --------
        >>> resolve_backend("cpu", dtype="float64").itemsize
        8

        """
        return np.dtype(self.dtype).itemsize

    def blas_threads_for(self, block_entries: int) -> contextlib.AbstractContextManager:
        """Context limiting BLAS to one thread for batches of small blocks on CPU.

        Batched small matrix products (per-group costs, Sinkhorn matrix-vector products) only
        pay synchronisation for BLAS threads; large single blocks keep the default.

        Examples
        --------
        >>> with resolve_backend("cpu").blas_threads_for(200 * 200):
        ...     pass

        """
        if self.name != "numpy" or block_entries > SMALL_BLOCK:
            return contextlib.nullcontext()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return contextlib.nullcontext()
        return threadpool_limits(limits=1, user_api="blas")

    def asarray(self, x: np.ndarray | float) -> Any:
        """Move a numpy array (or scalar) to the backend, dtype and device.

        Examples
        --------
        >>> resolve_backend("cpu", "torch").asarray(np.zeros(2))
        tensor([0., 0.])

        """
        return self.nx.from_numpy(np.asarray(x, dtype=self.dtype), type_as=self._like)

    def index(self, idx: np.ndarray) -> Any:
        """Integer index array on the backend's device.

        Examples
        --------
        >>> resolve_backend("cpu").index([2, 0]).dtype
        dtype('int64')

        """
        return self.nx.from_numpy(np.asarray(idx, dtype=np.int64), type_as=self._like_index)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Backend array to numpy (copies from the GPU).

        Examples
        --------
        >>> ops = resolve_backend("cpu", "torch", "float64")
        >>> ops.to_numpy(ops.asarray(np.ones(2)))
        array([1., 1.])

        """
        return self.nx.to_numpy(x)

    def transpose(self, x: Any) -> Any:
        """Swap the last two axes.

        Examples
        --------
        >>> ops = resolve_backend("cpu")
        >>> ops.transpose(ops.asarray(np.zeros((2, 3, 4)))).shape
        (2, 4, 3)

        """
        return self.nx.transpose(x, (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


def resolve_backend(
    device: str = "cpu", backend: str | None = None, dtype: str = "float32"
) -> ArrayOps:
    """Pick the array backend for a device.

    Parameters
    ----------
    device
        ``"cpu"`` (default) or a torch device string such as ``"cuda"``.
    backend
        ``"numpy"`` or ``"torch"``; ``None`` picks numpy on CPU and torch elsewhere.
    dtype
        ``"float32"`` (default: the kernels are stabilised, so single precision is safe) or
        ``"float64"``.

    Examples
    --------
    >>> resolve_backend("cpu", "torch").name
    'torch'

    """
    device = str(device)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    if backend is None:
        backend = "numpy" if device == "cpu" else "torch"
    if backend == "numpy":
        if device != "cpu":
            raise ValueError(
                f"backend='numpy' runs on the CPU only, but device={device!r}; pass "
                "backend='torch' (or backend=None) for a GPU."
            )
        return ArrayOps("numpy", "cpu", dtype, ot.backend.NumpyBackend())
    if backend == "torch":
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but torch sees no CUDA GPU; use device='cpu'."
            )
        torch.empty(0, device=device)  # validates the device string early
        return ArrayOps("torch", device, dtype, ot.backend.TorchBackend())
    raise ValueError(f"backend must be 'numpy', 'torch' or None, got {backend!r}.")
