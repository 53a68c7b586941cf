"""Where a step function's time goes, from TensorFlow's profiler: its calls' wall time split into
the time some op was running and the time none was (the executor's dispatch, Python, waiting), and
the op time by kind of op and by pass (forward, or inside a gradient).

Used by `benchmarks/train.py --profile N` and `--profile-first` and `benchmarks/generate.py --profile N`.
The profiler records every op's start and end on
TensorFlow's inter-op threads; where several ops overlap, each gets an equal share of the
overlap, so the kinds add up to the busy time exactly and the busy time never exceeds the wall
time. An op is in the backward pass when its node name is inside a gradient tape's scope
("gradient_tape/", at any depth: the second-order gradients of path length and R1 included) or a
gradient's own ("<op>_grad/"), or is the tape's AddN.
"""

import collections
import glob
import os
import re
import shutil
import tempfile
import time

# The kinds an op falls in, by its type (first match). Container ops (function calls, control
# flow) are left out: the ops they run are recorded themselves.
KINDS = (
    # Sg2Winograd*: the kernel; "MatMul (filter gradient taps)": `read_ops`' name for the products of
    # stylegan2_tf/ops/conv_2d.py's tap and stride-phase filter gradients.
    ("convolution", re.compile(r"Conv2D|Conv3D|DepthwiseConv|Winograd|filter gradient taps")),
    ("dense", re.compile(r"MatMul|Einsum")),
    ("FIR / bias+act kernels", re.compile(r"^Sg2|UpFirDn|FusedBiasAct")),
    ("optimizer", re.compile(r"Apply|AssignVariable|AssignAdd|AssignSub")),
    ("layout (oneDNN <-> TF, transposes)", re.compile(r"MklToTf|TfToMkl|Transpose|Reorder")),
    ("element-wise and reductions", re.compile(r".")),
)
CONTAINERS = re.compile(r"PartitionedCall|^While$|^StatelessWhile$|^If$|^StatelessIf$|^Case$|"
                        r"^_Recv$|^_Send$|^_HostRecv$|^_HostSend$")


def kind_of(op_type):
    for name, pattern in KINDS:
        if pattern.search(op_type):
            return name
    return KINDS[-1][0]


class Breakdown:
    """Seconds summed over the profiled calls: wall, busy (some op running), by (kind, pass), and by
    op type (for the element-wise remainder)."""

    def __init__(self):
        self.calls = 0
        self.wall = 0.0
        self.busy = 0.0
        self.by_kind = collections.Counter()      # (kind, "forward" | "backward") -> s
        self.by_type = collections.Counter()      # (op type, "forward" | "backward") -> s

    def add_ops(self, ops):
        """ops: [(start_ps, end_ps, op_type, backward)]; overlapping spans share their time."""
        ops = [op for op in ops if op[1] > op[0]]
        edges = sorted({t for s, e, _, _ in ops for t in (s, e)})
        starts, ends = collections.defaultdict(list), collections.defaultdict(list)
        for i, (s, e, _, _) in enumerate(ops):
            starts[s].append(i)
            ends[e].append(i)
        active = set()
        for left, right in zip(edges, edges[1:]):
            active.difference_update(ends.get(left, ()))
            active.update(starts.get(left, ()))
            if not active:
                continue
            seconds = (right - left) * 1e-12
            self.busy += seconds
            share = seconds / len(active)
            for i in active:
                _, _, op_type, backward = ops[i]
                phase = "backward" if backward else "forward"
                self.by_kind[kind_of(op_type), phase] += share
                self.by_type[op_type, phase] += share

    def lines(self, conv_flops=None):
        """The report, per call: wall, busy, idle, then each kind forward / backward."""
        n = max(self.calls, 1)
        wall, busy = self.wall / n, self.busy / n
        out = [f"wall {wall:.3f} s per call (mean of {self.calls}): ops running {busy:.3f} s "
               f"({100 * busy / wall:.0f} %), none running {wall - busy:.3f} s (dispatch, Python, waiting)"]
        for kind, _ in KINDS:
            fwd, bwd = self.by_kind[kind, "forward"] / n, self.by_kind[kind, "backward"] / n
            if fwd + bwd == 0:
                continue
            line = (f"  {kind:<38} {fwd + bwd:7.3f} s ({100 * (fwd + bwd) / wall:4.1f} %)  "
                    f"forward {fwd:.3f}  backward {bwd:.3f}")
            if kind == "convolution" and conv_flops:
                line += f"  -> {conv_flops / (fwd + bwd) / 1e9:.0f} GFLOP/s"
            out.append(line)
        per_type = collections.Counter()
        for (op_type, _), seconds in self.by_type.items():
            per_type[op_type] += seconds
        for kind, label in (("convolution", "convolution types"), ("FIR / bias+act kernels", "FIR / bias+act types"),
                            (KINDS[-1][0], "largest element-wise types")):
            largest = [(t, s / n) for t, s in per_type.most_common() if kind_of(t) == kind][:8]
            if largest:
                out.append(f"  {label}: " + ", ".join(f"{t} {s:.3f}" for t, s in largest))
        return out


def first_call_lines(first, again):
    """What a function's first call spent beyond a later call of the same work: with no op running
    (graph optimisation, function and kernel instantiation, on the calling thread) and with ops
    running (first-run setup inside the kernels, e.g. oneDNN creating its primitives, and first
    touches of fresh memory), by kind of op."""
    extra_idle = (first.wall - first.busy) - (again.wall - again.busy)
    out = [f"first call {first.wall:.1f} s, the same again {again.wall:.1f} s: {first.wall - again.wall:.1f} s more = "
           f"{extra_idle:.1f} s with no op running (graph optimisation, instantiation) + "
           f"{first.busy - again.busy:.1f} s more inside ops (first-run setup)"]
    for kind, _ in KINDS:
        a = first.by_kind[kind, "forward"] + first.by_kind[kind, "backward"]
        b = again.by_kind[kind, "forward"] + again.by_kind[kind, "backward"]
        if a or b:
            out.append(f"  {kind:<38} first {a:7.2f} s  again {b:7.2f} s  more {a - b:6.2f} s")
    return out


def read_ops(logdir):
    """[(start_ps, end_ps, op_type, backward)] of every op event in the profile under logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"no profile written under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    ops = []
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU") and not plane.name.startswith("/device:"):
            continue
        meta = plane.event_metadata
        for line in plane.lines:
            start_ps = line.timestamp_ns * 1000
            for event in line.events:
                m = meta[event.metadata_id]
                node, _, op_type = m.name.rpartition(":")
                # Op events are named "node:Type" with the type as their display name.
                if not node or not op_type or m.display_name != op_type or CONTAINERS.search(op_type):
                    continue
                s = start_ps + event.offset_ps
                ops.append((s, s + event.duration_ps, _typed(node, op_type), _in_gradient(node, op_type)))
    return ops


FILTER_GRADIENT_TAPS = re.compile(r"(^|/)filter_gradient_taps(_\d+)?/")   # conv_2d.FILTER_GRADIENT_TAPS_SCOPE


def _typed(node, op_type):
    """The op type to count an op as: a matrix product inside a convolution's tap filter gradient
    is that convolution's."""
    if "MatMul" in op_type and FILTER_GRADIENT_TAPS.search(node):
        return "MatMul (filter gradient taps)"
    return op_type


GRADIENT_SCOPE = re.compile(r"(^|/)(gradient_tape|gradients)/|_grad(_\d+)?/")


def _in_gradient(node, op_type):
    """Whether an op is part of a gradient: inside a tape's scope (where the kernels' registered
    gradients land too), or a gradient's own scope ("<op>_grad", as custom gradients such as
    scale_channels' name theirs), or an AddN (the tape's
    sum of the gradients that reach a tensor from several consumers, named at the top)."""
    return bool(GRADIENT_SCOPE.search(node)) or op_type == "AddN"


def profile_calls(fn, calls):
    """Call fn() (which must wait for its results) `calls` times under the profiler -> Breakdown."""
    import tensorflow as tf
    logdir = tempfile.mkdtemp(prefix="op-profile-")
    result = Breakdown()
    try:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                result.wall += time.perf_counter() - t0
                result.calls += 1
        finally:
            tf.profiler.experimental.stop()
        result.add_ops(read_ops(logdir))
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return result
