"""Shared scanpy-style plumbing: ``ax``, ``show``, ``return_fig``, ``save``."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def get_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The given axes and their figure, or a new figure with one axes.

    Examples
    --------
    >>> fig, ax = get_axes(None, (4, 3))

    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def save_path(writekey: str, save: bool | str | Path) -> Path:
    """Where scanpy would save: ``sc.settings.figdir / f"{writekey}{save}"``.

    ``save=True`` uses the default format (``sc.settings.file_format_figs``); a string is a
    suffix (``"_run1.png"``; the extension picks the format, default png); a
    :class:`~pathlib.Path` is used as is.

    Examples
    --------
    >>> save_path("matching", "_run1.png").name
    'matching_run1.png'

    """
    import scanpy as sc

    if isinstance(save, Path):
        return save
    figdir = Path(sc.settings.figdir)
    if save is True:
        return figdir / f"{writekey}.{sc.settings.file_format_figs}"
    name = f"{writekey}{save}"
    if Path(name).suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        name += ".png"
    return figdir / name


def finish(
    fig: Figure,
    ax: Axes,
    writekey: str,
    *,
    show: bool | None,
    return_fig: bool,
    save: bool | str | Path | None,
) -> Figure | Axes | None:
    """Save, show and return like scanpy's plotting functions.

    Returns the figure when ``return_fig``, else the axes when ``show`` is ``False``, else shows
    (``show=None`` follows ``sc.settings.autoshow``) and returns ``None``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> finish(fig, ax, "matching", show=False, return_fig=False, save=None) is ax
    True

    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    if save:
        path = save_path(writekey, save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    if return_fig:
        return fig
    show = sc.settings.autoshow if show is None else show
    if show:
        plt.show()
        return None
    return ax
