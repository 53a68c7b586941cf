// FusedBiasAct: y = clamp(act(x + b) * gain) in one pass over NHWC data (bias on the last axis),
// and its derivatives of any order k >= 1 up to 3:
//   Sg2FusedBiasActDeriv(dy, x, b; order=k) = dy * gain * act^(k)(x + b) * [|act(x + b) * gain| <= clamp],
// and the gradient with the bias's in one pass (CPU, float32/64):
//   Sg2FusedBiasActGrad(dy, x, b) = (dx, db),  dx = the order-1 derivative,  db = dx summed over rows
// (in float64, in fixed blocks: channel_sums.h).
// The Python side (stylegan2_tf/ops/custom_ops.py) chains these for first and higher gradients;
// the reference implementation is stylegan2_tf/ops/fused_bias_act.py. On the CPU, bfloat16
// tensors are computed in float32 and rounded once (bfloat16.h).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <string>
#include <vector>

#include "bfloat16.h"
#include "bias_act_math.h"
#include "bias_act_rows.h"
#include "channel_sums.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#ifdef SG2_WITH_CUDA
#include "cuda/tf_gpu.h"
#endif

namespace sg2 {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::errors::InvalidArgument;

// T: the tensors' element type; uint16_t stands for bfloat16, whose rows are widened to float32,
// computed by the float32 rows above and rounded once on the way out.
template <typename T>
void Run(OpKernelContext* ctx, Act act, const T* dy, const T* x, const T* b, T* out, int64_t rows, int64_t C,
         const Params& p) {
  auto rows_fn = [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same<T, uint16_t>::value) {
      std::vector<float> bf(C), xf(C), df(dy ? C : 0), of(C);
      WidenBf16(b, bf.data(), C);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t o = r * C;
        WidenBf16(x + o, xf.data(), C);
        if (dy) WidenBf16(dy + o, df.data(), C);
        AnyRow<float>(act, dy ? df.data() : nullptr, xf.data(), bf.data(), of.data(), C, p);
        NarrowBf16(of.data(), out + o, C);
      }
    } else {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t o = r * C;
        AnyRow<T>(act, dy ? dy + o : nullptr, x + o, b, out + o, C, p);
      }
    }
  };
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t cost = C * (act == Act::kLinear || act == Act::kRelu || act == Act::kLrelu ? 2 : 40);
  tensorflow::Shard(workers->num_threads, workers->workers, rows, cost, rows_fn);
}

class FusedBiasActBase : public OpKernel {
 public:
  explicit FusedBiasActBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string act;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("act", &act));
    OP_REQUIRES(ctx, ParseAct(act, &act_), InvalidArgument("FusedBiasAct: unknown activation '", act, "'"));
  }

 protected:
  // Checks the inputs, reads the scalars into p and allocates *out (null on an error, which is
  // then set on ctx). alpha, gain, clamp arrive as a float64 [3] input (in host memory on a GPU):
  // float attributes would round them to float32.
  void Prepare(OpKernelContext* ctx, const Tensor* dy, const Tensor& x, const Tensor& b, const Tensor& scalars,
               Params* p, Tensor** out) {
    *out = nullptr;
    OP_REQUIRES(ctx, scalars.dims() == 1 && scalars.dim_size(0) == 3,
                InvalidArgument("FusedBiasAct: params must be [alpha, gain, clamp]"));
    p->alpha = scalars.flat<double>()(0);
    p->gain = scalars.flat<double>()(1);
    p->clamp = scalars.flat<double>()(2);
    OP_REQUIRES(ctx, x.dims() >= 1, InvalidArgument("FusedBiasAct: x must have rank >= 1, got a scalar"));
    const int64_t C = x.dim_size(x.dims() - 1);
    OP_REQUIRES(ctx, b.dims() == 1 && (b.dim_size(0) == C || b.dim_size(0) == 0),
                InvalidArgument("FusedBiasAct: b must be [", C, "] (the last axis of x) or empty, got ",
                                b.shape().DebugString()));
    if (dy) {
      OP_REQUIRES(ctx, dy->shape() == x.shape(),
                  InvalidArgument("FusedBiasAct: dy ", dy->shape().DebugString(), " differs from x ",
                                  x.shape().DebugString()));
    }
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), out));
  }

  // T: the tensors' type; K: the element type the kernel computes on (uint16_t for bfloat16).
  template <typename T, typename K>
  void ComputeCpu(OpKernelContext* ctx, const Tensor* dy, const Tensor& x, const Tensor& b, const Tensor& scalars) {
    static_assert(sizeof(T) == sizeof(K), "K must have T's bits");
    Params p = params_;
    Tensor* out = nullptr;
    Prepare(ctx, dy, x, b, scalars, &p, &out);
    if (!out || x.NumElements() == 0) return;
    const int64_t C = x.dim_size(x.dims() - 1);
    std::vector<K> zeros(b.dim_size(0) ? 0 : C, K(0));  // no bias: add zeros (all-zero bits), one code path
    auto data = [](const Tensor& t) { return reinterpret_cast<const K*>(t.flat<T>().data()); };
    Run<K>(ctx, act_, dy ? data(*dy) : nullptr, data(x), b.dim_size(0) ? data(b) : zeros.data(),
           reinterpret_cast<K*>(out->flat<T>().data()), x.NumElements() / C, C, p);
  }

#ifdef SG2_WITH_CUDA
  // The plain CUDA function (cuda/fused_bias_act.cu) on the op's stream; K is the kernels'
  // element type (half_t for Eigen::half, same bits).
  template <typename T, typename K>
  void ComputeGpu(OpKernelContext* ctx, const Tensor* dy, const Tensor& x, const Tensor& b, const Tensor& scalars) {
    Params p = params_;
    Tensor* out = nullptr;
    Prepare(ctx, dy, x, b, scalars, &p, &out);
    if (!out || x.NumElements() == 0) return;
    FusedBiasActArgs<K> a{};
    a.x = reinterpret_cast<const K*>(x.flat<T>().data());
    a.b = b.dim_size(0) ? reinterpret_cast<const K*>(b.flat<T>().data()) : nullptr;
    a.dy = dy ? reinterpret_cast<const K*>(dy->flat<T>().data()) : nullptr;
    a.out = reinterpret_cast<K*>(out->flat<T>().data());
    a.size = x.NumElements();
    a.channels = x.dim_size(x.dims() - 1);
    a.act = static_cast<int>(act_);
    a.order = p.order;
    a.alpha = static_cast<float>(p.alpha);
    a.gain = p.gain;
    a.clamp = p.clamp;
    const char* error = LaunchFusedBiasAct<K>(a, GpuStream(ctx));
    OP_REQUIRES(ctx, error == nullptr, tensorflow::errors::Internal("FusedBiasAct: CUDA launch failed: ", error));
  }
#endif  // SG2_WITH_CUDA

  Act act_;
  Params params_{};
};

// The forward op (order 0) and the derivative op (order 1-3), on the CPU or (kGpu) the GPU.
template <typename T, typename K, bool kGpu>
class FusedBiasActOp : public FusedBiasActBase {
 public:
  explicit FusedBiasActOp(OpKernelConstruction* ctx) : FusedBiasActBase(ctx) { params_.order = 0; }
  void Compute(OpKernelContext* ctx) override { Dispatch(ctx, nullptr, 0); }

 protected:
  void Dispatch(OpKernelContext* ctx, const Tensor* dy, int first) {
    const Tensor &x = ctx->input(first), &b = ctx->input(first + 1), &scalars = ctx->input(first + 2);
    if constexpr (kGpu) {
#ifdef SG2_WITH_CUDA
      ComputeGpu<T, K>(ctx, dy, x, b, scalars);
#endif
    } else {
      ComputeCpu<T, K>(ctx, dy, x, b, scalars);
    }
  }
};

template <typename T, typename K, bool kGpu>
class FusedBiasActDerivOp : public FusedBiasActOp<T, K, kGpu> {
 public:
  explicit FusedBiasActDerivOp(OpKernelConstruction* ctx) : FusedBiasActOp<T, K, kGpu>(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("order", &this->params_.order));
    OP_REQUIRES(ctx, this->params_.order >= 1 && this->params_.order <= 3,
                InvalidArgument("FusedBiasActDeriv: order must be 1, 2 or 3, got ", this->params_.order));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    this->Dispatch(ctx, &dy, 1);
  }
};

// The order-1 derivative and the bias gradient (its sum over rows) together, on the CPU.
template <typename T>
class FusedBiasActGradOp : public FusedBiasActBase {
 public:
  explicit FusedBiasActGradOp(OpKernelConstruction* ctx) : FusedBiasActBase(ctx) { params_.order = 1; }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &dy = ctx->input(0), &x = ctx->input(1), &b = ctx->input(2), &scalars = ctx->input(3);
    Params p = params_;
    Tensor* dx = nullptr;
    Prepare(ctx, &dy, x, b, scalars, &p, &dx);
    if (!dx) return;
    Tensor* db = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, b.shape(), &db));
    const int64_t C = x.dim_size(x.dims() - 1);
    if (x.NumElements() == 0) {
      for (int64_t c = 0; c < b.dim_size(0); ++c) db->flat<T>().data()[c] = T(0);
      return;
    }
    const bool with_bias = b.dim_size(0) != 0;
    std::vector<T> zeros(with_bias ? 0 : C, T(0));
    const T* bias = with_bias ? b.flat<T>().data() : zeros.data();
    const T* dyd = dy.flat<T>().data();
    const T* xd = x.flat<T>().data();
    T* dxd = dx->flat<T>().data();
    const int64_t rows = x.NumElements() / C;
    int64_t blocks = 0;
    const int64_t cost = C * (act_ == Act::kLinear || act_ == Act::kRelu || act_ == Act::kLrelu ? 3 : 41);
    const auto partials = BlockPartials(ctx, 1, rows, C, cost, &blocks, [&](int64_t begin, int64_t end, double* acc) {
      for (int64_t r = begin; r < end; ++r) {
        T* __restrict out = dxd + r * C;
        AnyRow<T>(act_, dyd + r * C, xd + r * C, bias, out, C, p);
        if (with_bias) {
          for (int64_t c = 0; c < C; ++c) acc[c] += double(out[c]);
        }
      }
    });
    if (with_bias) SumAll(partials, blocks, C, db->flat<T>().data());
  }
};

using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("Sg2FusedBiasAct")
    .Input("x: T")
    .Input("b: T")
    .Input("params: double")
    .Output("y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("act: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("Sg2FusedBiasActDeriv")
    .Input("dy: T")
    .Input("x: T")
    .Input("b: T")
    .Input("params: double")
    .Output("dx: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("act: string")
    .Attr("order: int")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return absl::OkStatus();
    });

REGISTER_OP("Sg2FusedBiasActGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("b: T")
    .Input("params: double")
    .Output("dx: T")
    .Output("db: T")
    .Attr("T: {float, double}")
    .Attr("act: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("Sg2FusedBiasActGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        FusedBiasActGradOp<float>);
REGISTER_KERNEL_BUILDER(Name("Sg2FusedBiasActGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<double>("T"),
                        FusedBiasActGradOp<double>);

#define SG2_REGISTER(DEVICE, T, K, GPU)                                                                   \
  REGISTER_KERNEL_BUILDER(Name("Sg2FusedBiasAct").Device(DEVICE).TypeConstraint<T>("T").HostMemory("params"), \
                          SG2_OP(FusedBiasActOp, T, K, GPU));                                           \
  REGISTER_KERNEL_BUILDER(                                                                             \
      Name("Sg2FusedBiasActDeriv").Device(DEVICE).TypeConstraint<T>("T").HostMemory("params"),         \
      SG2_OP(FusedBiasActDerivOp, T, K, GPU));
#define SG2_OP(NAME, T, K, GPU) NAME<T, K, GPU>
SG2_REGISTER(tensorflow::DEVICE_CPU, Eigen::bfloat16, uint16_t, false)
SG2_REGISTER(tensorflow::DEVICE_CPU, float, float, false)
SG2_REGISTER(tensorflow::DEVICE_CPU, double, double, false)
#ifdef SG2_WITH_CUDA
SG2_REGISTER(tensorflow::DEVICE_GPU, Eigen::half, half_t, true)
SG2_REGISTER(tensorflow::DEVICE_GPU, float, float, true)
SG2_REGISTER(tensorflow::DEVICE_GPU, double, double, true)
#endif
#undef SG2_OP
#undef SG2_REGISTER

}  // namespace sg2
