"""Every docstring of the package has its shared fragments substituted (no ``%(name)s`` left)."""

import importlib
import inspect
import pkgutil

import groove_sc
from groove_sc._docs import leftover_placeholders


def _modules():
    yield groove_sc
    for info in pkgutil.walk_packages(groove_sc.__path__, "groove_sc."):
        yield importlib.import_module(info.name)


def _documented(module):
    yield module.__name__, module
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in vars(obj).items():
                member = getattr(member, "__func__", member)
                if isinstance(member, property):
                    member = member.fget
                if callable(member):
                    yield f"{module.__name__}.{name}.{attr}", member
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj


def test_no_placeholder_left_in_any_docstring():
    left = {
        where: names
        for module in _modules()
        for where, obj in _documented(module)
        if (names := leftover_placeholders(inspect.getdoc(obj) or obj.__doc__))
    }
    assert not left, f"unsubstituted docstring placeholders: {left}"


def test_train_documents_devices_with_scvi_fragments():
    doc = groove_sc.model.GROOVE.train.__doc__
    assert "accelerator\n" in doc and "devices\n" in doc and "%(" not in doc
