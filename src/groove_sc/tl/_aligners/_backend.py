"""Array backend for the solvers: numpy on CPU, torch on CPU or GPU, through POT's backend layer."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot

#: Padded costs per solver call on CPU (a batch of groups of similar size).
CPU_CHUNK_BYTES = 256 * 2**20
#: Padded costs per solver call on a GPU.
GPU_CHUNK_BYTES = 2048 * 2**20
#: Kernels iterated together on CPU: sized for the caches (slots are refilled as groups finish).
CPU_WORKING_SET_BYTES = 8 * 2**20
#: Blocks up to this many entries are processed with one BLAS thread on CPU.
SMALL_BLOCK = 1024 * 1024
#: Kernels iterated together on a GPU: one tensor program over the whole batch.
GPU_WORKING_SET_BYTES = 2048 * 2**20
#: Groups with more source x target pairs than this are solved streamed on CPU (no dense block;
#: see ``_stream.py``): 4096 x 4096 cells.
CPU_STREAM_ABOVE = 2**24
#: The same on a GPU, where dense blocks of up to 4 GB (float32) are solved batched.
GPU_STREAM_ABOVE = 2**30


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

    @property
    def chunk_bytes(self) -> int:
        """Kernel memory per batch of padded groups.

        Examples
        --------
        >>> resolve_backend("cpu").chunk_bytes  # doctest: +SKIP
        268435456

        """
        return CPU_CHUNK_BYTES if self.device == "cpu" else GPU_CHUNK_BYTES

    @property
    def working_set_bytes(self) -> int:
        """Kernel memory iterated together (cache-sized on CPU).

        Examples
        --------
        >>> resolve_backend("cpu").working_set_bytes  # doctest: +SKIP
        8388608

        """
        return CPU_WORKING_SET_BYTES if self.device == "cpu" else GPU_WORKING_SET_BYTES

    @property
    def stream_above(self) -> int:
        """Default size (source x target pairs) above which a group is solved streamed.

        Examples
        --------
        >>> resolve_backend("cpu").stream_above  # doctest: +SKIP
        16777216

        """
        return CPU_STREAM_ABOVE if self.device == "cpu" else GPU_STREAM_ABOVE

    @property
    def itemsize(self) -> int:
        """Bytes per float.

        Examples
        --------
        >>> resolve_backend("cpu", dtype="float64").itemsize  # doctest: +SKIP
        8

        """
        return np.dtype(self.dtype).itemsize

    def blas_threads_for(self, block_entries: int) -> contextlib.AbstractContextManager:
        """Context limiting BLAS to one thread for batches of small blocks on CPU.

        Batched small matrix products (per-group costs, Sinkhorn matrix-vector products) only
        pay synchronisation for BLAS threads; large single blocks keep the default.

        Examples
        --------
        >>> with ops.blas_threads_for(200 * 200):  # doctest: +SKIP
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
        >>> ops.asarray(np.zeros(3))  # doctest: +SKIP

        """
        x = np.asarray(x, dtype=self.dtype)
        if self.name == "numpy":
            return x
        import torch

        return torch.as_tensor(x, device=self.device)

    def index(self, idx: np.ndarray) -> Any:
        """Integer index array on the backend's device.

        Examples
        --------
        >>> ops.index(np.arange(3))  # doctest: +SKIP

        """
        idx = np.asarray(idx, dtype=np.int64)
        if self.name == "numpy":
            return idx
        import torch

        return torch.as_tensor(idx, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Backend array to numpy (copies from the GPU).

        Examples
        --------
        >>> ops.to_numpy(ops.asarray(np.ones(2)))  # doctest: +SKIP
        array([1., 1.])

        """
        if self.name == "numpy":
            return np.asarray(x)
        return x.detach().cpu().numpy()

    def transpose(self, x: Any) -> Any:
        """Swap the last two axes.

        Examples
        --------
        >>> ops.transpose(ops.asarray(np.zeros((2, 3, 4)))).shape  # doctest: +SKIP
        (2, 4, 3)

        """
        if self.name == "numpy":
            return np.swapaxes(x, -1, -2)
        return x.transpose(-1, -2)


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
    >>> resolve_backend("cuda").name  # doctest: +SKIP
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
