"""Importing the user's own Python code, by module name or by file path: the data functions of
``--dataset module:function`` and the classes of ``--custom-objects``. It runs that code, so it is
only ever done for a name the user passed."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def first_line(err) -> str:
    text = getattr(err, "message", None) or str(err)
    return (text.strip().splitlines() or [""])[0]


def import_user_module(name: str, error, what: str = "module"):
    """The module ``name`` (``pkg.mod``, found from the working folder too, or ``path/to/file.py``),
    imported; a failure is one ``error(...)`` line naming the file or module and the fix."""
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise error(f"{name}: no such Python file; check the path of the {what}.")
        spec = importlib.util.spec_from_file_location(f"lightcompress_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # classes defined there pickle and print under this name
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - the user's code
            sys.modules.pop(spec.name, None)
            raise error(f"importing {name} failed ({type(err).__name__}: {first_line(err)}); fix that file.") from None
        return module
    added = str(Path.cwd()) not in sys.path
    if added:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise error(f"module '{name}' was not found; check its name, run from its folder or add that folder to "
                        f"PYTHONPATH (or give the path of its .py file).") from None
        raise error(f"importing module '{name}' failed ({type(err).__name__}: {first_line(err)}); "
                    f"install what it needs.") from None
    except Exception as err:  # noqa: BLE001 - the user's code
        raise error(f"importing module '{name}' failed ({type(err).__name__}: {first_line(err)}); "
                    f"fix that module.") from None
    finally:
        if added:
            sys.path.remove(str(Path.cwd()))
