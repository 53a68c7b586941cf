"""The export folder, written completely or not at all."""

import contextlib
import os
import shutil
import tempfile

from .errors import ExportError

MARKER = "signature.json"  # every export folder has one


@contextlib.contextmanager
def staged_folder(outdir, force=False):
    """Yields an empty folder beside `outdir`; on success it becomes `outdir`, on error it is removed.
    An existing non-empty `outdir` is refused, or with `force` replaced, and then only if it is an
    earlier export (it has signature.json): --force never deletes a folder this tool did not write."""
    outdir = os.path.abspath(outdir)
    if os.path.exists(outdir):
        if not os.path.isdir(outdir):
            raise ExportError(f"{outdir}: exists and is not a folder")
        if os.listdir(outdir):
            if not force:
                raise ExportError(f"{outdir}: exists and is not empty (pass --force to replace an earlier export)")
            if not os.path.isfile(os.path.join(outdir, MARKER)):
                raise ExportError(f"{outdir}: exists, is not empty and holds no earlier export ({MARKER}); "
                                  f"not replaced even with --force")
    parent = os.path.dirname(outdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        os.chmod(tmp, 0o755)
        yield tmp
        if os.path.exists(outdir):
            old = tempfile.mkdtemp(prefix=".replaced-", dir=parent)
            os.replace(outdir, os.path.join(old, "export"))
            os.replace(tmp, outdir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
