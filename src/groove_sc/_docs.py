"""Shared docstring fragments, written once and substituted into many docstrings.

A docstring names a fragment with a ``%(name)s`` placeholder on a line of its own; the
:func:`doc_params` decorator replaces it with the fragment, indented like the placeholder.
Fragments are plain numpy-docstring text (a parameter name line, then its description
indented by four spaces). An unknown placeholder is an error at import time, and
``tests/test_docs.py`` checks that no placeholder is left anywhere in the package.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")
_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.MULTILINE)


def substitute(doc: str, fragments: dict[str, str]) -> str:
    r"""Replace every ``%(name)s`` line of ``doc`` by ``fragments[name]``, indented alike.

    Parameters
    ----------
    doc
        A docstring.
    fragments
        Fragment name -> text.

    Returns
    -------
    The docstring with every placeholder replaced.

    Examples
    --------
    >>> substitute("Args:\n    %(x)s\n", {"x": "x\n    The x."}).splitlines()
    ['Args:', '    x', '        The x.']

    """

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in fragments:
            raise KeyError(
                f"Docstring placeholder '%({name})s' has no fragment; known fragments: "
                f"{sorted(fragments)}."
            )
        text = textwrap.dedent(fragments[name]).strip("\n")
        return textwrap.indent(text, match.group("indent"), lambda line: bool(line.strip()))

    return _PLACEHOLDER.sub(replace, doc)


def doc_params(**fragments: str) -> Callable[[_T], _T]:
    r"""Decorator filling ``%(name)s`` placeholders of a docstring with the given fragments.

    Examples
    --------
    >>> @doc_params(x="x\n    The x.")
    ... def f(x):
    ...     '''Do nothing.
    ...
    ...     Parameters
    ...     ----------
    ...     %(x)s
    ...     '''
    >>> "The x." in f.__doc__
    True

    """

    def decorate(obj: _T) -> _T:
        if obj.__doc__:
            obj.__doc__ = substitute(obj.__doc__, fragments)
        return obj

    return decorate


def leftover_placeholders(doc: str | None) -> list[str]:
    r"""Names of placeholders not substituted in ``doc`` (for the docs test).

    Examples
    --------
    >>> leftover_placeholders("a\n    %(prune)s\n")
    ['prune']

    """
    return [m.group("name") for m in _PLACEHOLDER.finditer(doc or "")]
