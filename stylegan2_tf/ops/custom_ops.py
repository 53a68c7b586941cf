"""The C++ kernels of `custom_ops/`: built on first use and loaded once (build and load only;
ops/implementation.py chooses between them and the reference ops per call, and each op's
kernel wrapper with its gradients sits beside its reference op in fused_bias_act.py and
upfirdn_2d.py).

Build: the sources are compiled with the C++ compiler (`$STYLEGAN2_TF_CXX`, else `$CXX`, else
`c++`) and TensorFlow's own flags (`tf.sysconfig`) into a cache directory
(`$STYLEGAN2_TF_OPS_CACHE`, default `~/.cache/stylegan2_tf/custom_ops`), in a folder named by a
hash of the sources, the TensorFlow version, the compiler's version, the flags and the CPU's
instruction-set flags (the library is built for the CPU it runs on). Later processes load it from
there; concurrent processes wait for one build (a file lock). A build that fails stops nothing:
`auto` then uses the reference ops and says why, once per process.
"""

import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import tensorflow as tf

from .capabilities import cpu_flags
from ..errors import UserError

CACHE_ENV = "STYLEGAN2_TF_OPS_CACHE"
CXX_ENV = "STYLEGAN2_TF_CXX"
NVCC_ENV = "STYLEGAN2_TF_NVCC"
CUDA_ARCHS_ENV = "STYLEGAN2_TF_CUDA_ARCHS"


def find_sources(package_root=None, prefixes=None):
    """The folder of the kernel sources: custom_ops/ beside the package (a clone, an editable
    install), else share/stylegan2_tf/custom_ops under the installation's prefix (a wheel puts
    them there); the first if neither has them (the build then says they are missing)."""
    import site
    package_root = package_root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if prefixes is None:
        prefixes = [sys.prefix, sys.base_prefix, getattr(site, "USER_BASE", None) or ""]
    candidates = [os.path.join(package_root, "custom_ops")]
    candidates += [os.path.join(p, "share", "stylegan2_tf", "custom_ops") for p in prefixes if p]
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "fused_bias_act.cc")):
            return folder
    return candidates[0]


SOURCES_DIR = find_sources()
CPU_SOURCES = ("fused_bias_act.cc", "upfirdn_2d.cc", "scale_channels.cc",   # the TF ops (CPU kernels; GPU wrappers)
               "synthesis_epilogue.cc", "winograd_conv_2d.cc", "winograd_conv_2d_double.cc")
CUDA_SOURCES = ("cuda/fused_bias_act.cu", "cuda/upfirdn_2d.cu")   # plain CUDA, no TensorFlow
HEADERS = ("bfloat16.h", "bias_act_math.h", "bias_act_rows.h", "channel_sums.h",
           "winograd_conv_2d.h", "cuda/kernels.h", "cuda/common.cuh", "cuda/tf_gpu.h")
LIBRARY_NAME = "stylegan2_tf_ops.so"

log = logging.getLogger(__name__)


class CustomOpsError(UserError, RuntimeError):
    """The kernels cannot be built or loaded, or were asked for (impl='custom') and cannot serve
    the call."""


_lock = threading.Lock()
_state = {"module": None, "error": None, "tried": False, "gpu_error": None, "gpus": None, "compile": True}
# Why `auto` uses the reference ops in a process that only loads kernels built before: said to no one
# (generation runs without the kernels; see prebuilt_kernels_only).
NOT_BUILT = "the kernels are not built yet, and this process does not build them"


# --------------------------------------------------------------------------- build

def _cpu_flags():
    flags = cpu_flags()
    return " ".join(sorted(flags)) if flags is not None else platform.processor()


def compiler():
    return os.environ.get(CXX_ENV) or os.environ.get("CXX") or "c++"


def nvcc():
    """The CUDA compiler: $STYLEGAN2_TF_NVCC, else `nvcc` on PATH, else under $CUDA_HOME or
    /usr/local/cuda; None when there is none."""
    if os.environ.get(NVCC_ENV):
        return os.environ[NVCC_ENV]
    found = shutil.which("nvcc")
    if found:
        return found
    for base in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if base and os.path.isfile(os.path.join(base, "bin", "nvcc")):
            return os.path.join(base, "bin", "nvcc")
    return None


def cuda_archs():
    """Compute capabilities to compile for, as strings like '80': $STYLEGAN2_TF_CUDA_ARCHS
    (comma-separated), else those of the visible GPUs."""
    if os.environ.get(CUDA_ARCHS_ENV):
        return sorted({a.strip().replace(".", "") for a in os.environ[CUDA_ARCHS_ENV].split(",") if a.strip()})
    archs = set()
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cc:
            archs.add(f"{cc[0]}{cc[1]}")
    return sorted(archs)


def nvcc_command(source, output, archs):
    """Compiles one plain CUDA source to an object: SASS for every arch, and PTX for the newest
    (so that a newer GPU can still JIT it)."""
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    if archs:
        gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
    return [nvcc(), "-std=c++17", "-c", source, "-o", output, "-O3", "-DNDEBUG", "--expt-relaxed-constexpr",
            "-Xcompiler", "-fPIC", *gencode]


def cuda_link_flags():
    """The CUDA runtime, linked statically: the library then needs no libcudart of its own
    version at run time, only the driver that TensorFlow uses too. Its folder is the one nvcc
    itself links from (nvcc --dryrun), so that wrappers and symlinks do not matter."""
    dirs = []
    try:
        r = subprocess.run([nvcc(), "--dryrun", "-o", "x", "x.cu"], capture_output=True, text=True, timeout=60)
        for line in (r.stdout + r.stderr).splitlines():
            if "LIBRARIES=" in line:
                dirs = [d for d in re.findall(r'-L"?([^"\s]+)', line) if not d.rstrip("/").endswith("stubs")]
    except (OSError, subprocess.SubprocessError):
        pass
    if not dirs:
        root = os.path.dirname(os.path.dirname(os.path.realpath(nvcc())))
        dirs = [os.path.join(root, "lib64")]
    return [f"-L{d}" for d in dirs] + ["-lcudart_static", "-ldl", "-lrt", "-lpthread"]


_ACCEPTS = {}


def _compiler_accepts(flag):
    """Whether the C++ compiler knows `flag` (probed once per flag)."""
    if flag not in _ACCEPTS:
        try:
            result = subprocess.run([compiler(), flag, "-x", "c++", "-fsyntax-only", "-"], input=b"",
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            _ACCEPTS[flag] = result.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _ACCEPTS[flag] = False
    return _ACCEPTS[flag]


def _arch_flags():
    flags = ["-march=native"]
    # TF's bundled Eigen does not compile with AVX512-FP16 enabled (GCC 12: PacketMathFP16.h),
    # which -march=native turns on for CPUs that have it (Sapphire Rapids and later); the kernels
    # compute float16 in float32 anyway.
    if "avx512_fp16" in _cpu_flags().split() and _compiler_accepts("-mno-avx512fp16"):
        flags.append("-mno-avx512fp16")
    return flags


def compile_command(source, output, cuda=False):
    """Compiles one C++ source to an object (cuda: with the GPU op wrappers)."""
    flags = ["-std=c++17", "-c", "-fPIC", "-O3", *_arch_flags(), "-Wno-deprecated-declarations",
             "-Wno-interference-size", *(["-DSG2_WITH_CUDA"] if cuda else [])]
    return [compiler(), *flags, source, "-o", output] + tf.sysconfig.get_compile_flags()


def link_command(objects, output, cuda=False):
    """Links the objects into the shared library; a missing symbol fails here, not at load."""
    return ([compiler(), "-shared", "-Wl,--no-undefined", *objects, "-o", output]
            + tf.sysconfig.get_link_flags() + (cuda_link_flags() if cuda else []))


def _check_sources():
    missing = [n for n in CPU_SOURCES + CUDA_SOURCES + HEADERS if not os.path.isfile(os.path.join(SOURCES_DIR, n))]
    if missing:
        raise CustomOpsError(f"kernel sources not found ({SOURCES_DIR}: {', '.join(missing)} missing)")


def _hash_sources(h):
    for name in CPU_SOURCES + CUDA_SOURCES + HEADERS:
        with open(os.path.join(SOURCES_DIR, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")


def _tool_version(tool):
    try:
        return subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable: {e}"


def build_key(archs=()):
    """Hash of everything the built library depends on (archs: the CUDA build's, else CPU only)."""
    h = hashlib.sha256()
    _hash_sources(h)
    parts = [tf.__version__, _tool_version(compiler()), " ".join(compile_command("x", "y", bool(archs))),
             " ".join(link_command(["x"], "y")), _cpu_flags(), sys.platform]
    if archs:
        parts += [_tool_version(nvcc()), " ".join(nvcc_command("x", "y", list(archs)))]
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:20]


def cache_dir():
    return os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "stylegan2_tf", "custom_ops"))


def _run(cmd, what, log_path, verbose):
    if verbose:
        print(" ".join(cmd), flush=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as e:
        raise CustomOpsError(f"could not run {what} {cmd[0]!r}: {e}") from None
    if r.returncode != 0:
        errors = [line for line in r.stderr.splitlines() if "error" in line] or r.stderr.splitlines()[-3:]
        with open(log_path, "w") as f:
            f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
        raise CustomOpsError(f"building the kernels failed ({os.path.basename(cmd[0])} exit {r.returncode}: "
                             f"{errors[0].strip() if errors else 'no message'}; log: {log_path})")


def compile_library(output, archs=(), workdir=None, verbose=False):
    """Compiles the op library to `output`: the CPU kernels, plus (archs given) the CUDA kernels
    compiled by nvcc for those compute capabilities and their GPU op wrappers. Each source is
    compiled on its own, as many at once as the machine has cores, then all are linked.
    Raises CustomOpsError with the compiler's first error (the whole log beside `output`)."""
    from concurrent.futures import ThreadPoolExecutor
    _check_sources()
    log_path = os.path.join(os.path.dirname(os.path.abspath(output)), "build.log")
    if archs and nvcc() is None:
        raise CustomOpsError("no CUDA compiler (nvcc) found: set $STYLEGAN2_TF_NVCC or put nvcc on PATH")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        jobs = []       # (command, what runs it, object)
        for source in CUDA_SOURCES if archs else ():
            obj = os.path.join(tmp, os.path.basename(source) + ".o")
            jobs.append((nvcc_command(os.path.join(SOURCES_DIR, source), obj, list(archs)), "nvcc", obj))
        for source in CPU_SOURCES:
            obj = os.path.join(tmp, source + ".o")
            jobs.append((compile_command(os.path.join(SOURCES_DIR, source), obj, bool(archs)), "the compiler", obj))
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            runs = [pool.submit(_run, cmd, what, log_path, verbose) for cmd, what, _ in jobs]
            for run in runs:            # the first failure in source order, once all have ended
                run.result()
        _run(link_command([obj for _, _, obj in jobs], output, bool(archs)), "the linker", log_path, verbose)
    return output


def build(verbose=False, archs=None, compile_missing=True):
    """Compile the kernels if the cache has no build for this key; -> the library's path.
    archs: CUDA compute capabilities (default: the visible GPUs', when TensorFlow is built with
    CUDA and nvcc exists; none on a CPU-only machine). Raises CustomOpsError when the build fails,
    or (compile_missing False) when there is no build to load."""
    import fcntl
    if archs is None:
        archs = cuda_archs() if (tf.test.is_built_with_cuda() and nvcc()) else []
    _check_sources()
    folder = os.path.join(cache_dir(), build_key(archs))
    path = os.path.join(folder, LIBRARY_NAME)
    if os.path.isfile(path):
        return path
    if not compile_missing:
        raise CustomOpsError(NOT_BUILT)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # one build; the others wait and then load it
        if os.path.isfile(path):
            return path
        tmp = f"{path}.{os.getpid()}.tmp"
        log.warning("stylegan2_tf custom ops: compiling the kernels%s into %s (once per machine; up to a "
                    "minute)", f" with CUDA for sm_{', sm_'.join(archs)}" if archs else "", folder)
        try:
            compile_library(tmp, archs, workdir=folder, verbose=verbose)
        except CustomOpsError:
            if os.path.exists(tmp):       # nothing half-written stays behind
                os.remove(tmp)
            raise
        os.replace(tmp, path)
    return path


def gpus_visible():
    if _state["gpus"] is None:      # asked once: choose() runs for every op call in eager code
        _state["gpus"] = bool(tf.config.list_logical_devices("GPU"))
    return _state["gpus"]


def library():
    """The loaded op module, or None (the reason is in `unavailable_reason()`). Builds once:
    with the CUDA kernels where TensorFlow is built with CUDA, a GPU is visible and nvcc exists;
    a CUDA build that fails falls back to the CPU kernels (the reason: `gpu_unavailable_reason()`)."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            archs = []
            if tf.test.is_built_with_cuda() and gpus_visible():
                if nvcc() is None:
                    _state["gpu_error"] = "no CUDA compiler (nvcc) found to build the GPU kernels"
                else:
                    archs = cuda_archs()
            try:
                try:
                    path = build(archs=archs, compile_missing=_state["compile"])
                except CustomOpsError as e:
                    if not archs:
                        raise
                    _state["gpu_error"] = f"the GPU kernels did not build: {e}"
                    archs = []
                    path = build(archs=archs, compile_missing=_state["compile"])
                _state["module"] = tf.load_op_library(path)
                if not archs and not _state["gpu_error"]:
                    _state["gpu_error"] = "the kernels were built without CUDA"
            except CustomOpsError as e:
                _state["error"] = str(e)
            except (tf.errors.NotFoundError, OSError) as e:
                _state["error"] = f"the built library does not load: {str(e).splitlines()[0]}"
        return _state["module"]


def prebuilt_kernels_only():
    """From now on this process loads the kernels if a build exists but never compiles them: for the
    generation tools, which run without the kernels (1.3x slower on a CPU at 256² config F:
    benchmarks/README.md) and whose first command should not wait a minute for a compiler. Call it
    before the first op runs. `$STYLEGAN2_TF_OPS=custom`
    (the kernels asked for by name) still builds them."""
    if os.environ.get("STYLEGAN2_TF_OPS") == "custom":
        return
    with _lock:
        _state["compile"] = False


def unavailable_reason():
    library()
    return _state["error"]


def gpu_unavailable_reason():
    """None when the loaded library has GPU kernels, else why not."""
    library()
    return _state["error"] or _state["gpu_error"]


def _reset_for_tests():
    with _lock:
        _state.update(module=None, error=None, tried=False, gpu_error=None, gpus=None, compile=True)
