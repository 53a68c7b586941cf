"""Optional packages of the exports, imported only when a format needs them."""

import importlib

from .errors import ExportError

INSTALL = 'pip install "stylegan2-tf[export]"'


def require(module, purpose):
    """Import `module`, or one error line that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{purpose} needs the Python package {module!r}, which is not installed: "
                          f"{INSTALL} (or pip install -e \".[export]\" in a clone)") from None
