// FusedBiasAct: y = clamp(act(x + b) * gain) in one pass over NHWC data (bias on the last axis),
// and its derivatives of any order k >= 1 up to 3:
//   Sg2FusedBiasActDeriv(dy, x, b; order=k) = dy * gain * act^(k)(x + b) * [|act(x + b) * gain| <= clamp].
// The Python side (stylegan2_tf/ops/custom_ops.py) chains these for first and higher gradients;
// the reference implementation is stylegan2_tf/ops/fused_bias_act.py.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace sg2 {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::errors::InvalidArgument;

enum class Act { kLinear, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

bool ParseAct(const std::string& name, Act* act) {
  static const struct { const char* name; Act act; } kTable[] = {
      {"linear", Act::kLinear}, {"relu", Act::kRelu},         {"lrelu", Act::kLrelu},
      {"tanh", Act::kTanh},     {"sigmoid", Act::kSigmoid},   {"elu", Act::kElu},
      {"selu", Act::kSelu},     {"softplus", Act::kSoftplus}, {"swish", Act::kSwish}};
  for (const auto& e : kTable) {
    if (name == e.name) { *act = e.act; return true; }
  }
  return false;
}

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

template <typename T> inline T Sigmoid(T z) { return T(1) / (T(1) + std::exp(-z)); }

// act(z), the value the clamp mask is taken on.
template <Act A, typename T> inline T Value(T z, T alpha) {
  switch (A) {
    case Act::kLinear: return z;
    // Branch-free forms (vectorise); equal to z > 0 ? z : alpha * z, NaN included.
    case Act::kRelu: return std::max(z, T(0));
    case Act::kLrelu: return std::max(z, T(0)) + alpha * std::min(z, T(0));
    case Act::kTanh: return std::tanh(z);
    case Act::kSigmoid: return Sigmoid(z);
    case Act::kElu: return z > T(0) ? z : std::expm1(z);
    case Act::kSelu: return z > T(0) ? T(kSeluScale) * z : T(kSeluScale * kSeluAlpha) * std::expm1(z);
    case Act::kSoftplus: return z > T(0) ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
    case Act::kSwish: return z * Sigmoid(z);
  }
  return z;
}

// The k-th derivative of act at z (k = 1, 2, 3). At the kinks of relu / lrelu / elu / selu the
// left derivative is used, as TensorFlow's own gradients do (z > 0 is the positive branch).
template <Act A, typename T> inline T Derivative(T z, T alpha, int k) {
  switch (A) {
    case Act::kLinear: return k == 1 ? T(1) : T(0);
    case Act::kRelu: return k == 1 ? T(z > T(0)) : T(0);
    case Act::kLrelu: return k == 1 ? (z > T(0) ? T(1) : alpha) : T(0);
    case Act::kTanh: {
      const T t = std::tanh(z), d = T(1) - t * t;
      return k == 1 ? d : k == 2 ? T(-2) * t * d : d * (T(6) * t * t - T(2));
    }
    case Act::kSigmoid:
    case Act::kSoftplus: {  // softplus' = sigmoid: shift the order by one
      const int m = A == Act::kSoftplus ? k - 1 : k;
      const T s = Sigmoid(z), d = s * (T(1) - s);
      return m == 0 ? s : m == 1 ? d : m == 2 ? d * (T(1) - T(2) * s) : d * (T(1) - T(6) * s + T(6) * s * s);
    }
    case Act::kElu: return z > T(0) ? (k == 1 ? T(1) : T(0)) : std::exp(z);
    case Act::kSelu:
      return z > T(0) ? (k == 1 ? T(kSeluScale) : T(0)) : T(kSeluScale * kSeluAlpha) * std::exp(z);
    case Act::kSwish: {
      const T s = Sigmoid(z), p = s * (T(1) - s), q = T(1) - T(2) * s;
      if (k == 1) return s + z * p;
      if (k == 2) return p * (T(2) + z * q);
      return p * (q * (T(3) + z * q) - T(2) * z * p);
    }
  }
  return T(0);
}

struct Params {
  double alpha, gain, clamp;  // clamp < 0: none
  int order;                 // 0: forward value; k >= 1: k-th derivative times dy
};

// One row of C channels. Templated on the activation (and the derivative's order) so that the
// inner loops carry no branch on them and vectorise.
template <Act A, typename T>
void RowValue(const T* __restrict x, const T* __restrict b, T* __restrict out, int64_t C, const Params& p) {
  const T alpha = T(p.alpha), gain = T(p.gain), clamp = T(p.clamp);
  if (p.clamp >= 0) {
    for (int64_t c = 0; c < C; ++c) out[c] = std::min(std::max(Value<A, T>(x[c] + b[c], alpha) * gain, -clamp), clamp);
  } else {
    for (int64_t c = 0; c < C; ++c) out[c] = Value<A, T>(x[c] + b[c], alpha) * gain;
  }
}

template <Act A, int K, typename T>
void RowDeriv(const T* __restrict dy, const T* __restrict x, const T* __restrict b, T* __restrict out, int64_t C,
              const Params& p) {
  const T alpha = T(p.alpha), gain = T(p.gain), clamp = T(p.clamp);
  if (p.clamp >= 0) {
    for (int64_t c = 0; c < C; ++c) {
      const T z = x[c] + b[c], v = Value<A, T>(z, alpha) * gain;
      const T g = dy[c] * gain * Derivative<A, T>(z, alpha, K);
      const bool inside = (v >= -clamp) & (v <= clamp);  // no short circuit: a select, not a branch
      out[c] = inside ? g : T(0);
    }
  } else {
    if constexpr (A == Act::kLrelu && K == 1) {  // the StyleGAN2 case, spelled out so that it vectorises
      // out = z > 0 ? g : g * alpha, as a bit mask: gcc turns the conditional into a branch, and
      // a mispredicted branch per element costs 3x the memory traffic.
      using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
      for (int64_t c = 0; c < C; ++c) {
        const T g = dy[c] * gain, ga = g * alpha;
        const U mask = U(0) - U(x[c] + b[c] > T(0));
        U gb, gab;
        std::memcpy(&gb, &g, sizeof(T));
        std::memcpy(&gab, &ga, sizeof(T));
        const U r = (gb & mask) | (gab & ~mask);
        std::memcpy(out + c, &r, sizeof(T));
      }
    } else {
      for (int64_t c = 0; c < C; ++c) out[c] = dy[c] * gain * Derivative<A, T>(x[c] + b[c], alpha, K);
    }
  }
}

template <Act A, typename T>
void Row(const T* dy, const T* x, const T* b, T* out, int64_t C, const Params& p) {
  switch (p.order) {
    case 0: RowValue<A, T>(x, b, out, C, p); break;
    case 1: RowDeriv<A, 1, T>(dy, x, b, out, C, p); break;
    case 2: RowDeriv<A, 2, T>(dy, x, b, out, C, p); break;
    default: RowDeriv<A, 3, T>(dy, x, b, out, C, p); break;
  }
}

template <typename T>
void Run(OpKernelContext* ctx, Act act, const T* dy, const T* x, const T* b, T* out, int64_t rows, int64_t C,
         const Params& p) {
  auto rows_fn = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t o = r * C;
      const T* d = dy ? dy + o : nullptr;
      switch (act) {
#define SG2_CASE(K) case Act::K: Row<Act::K, T>(d, x + o, b, out + o, C, p); break;
        SG2_CASE(kLinear) SG2_CASE(kRelu) SG2_CASE(kLrelu) SG2_CASE(kTanh) SG2_CASE(kSigmoid)
        SG2_CASE(kElu) SG2_CASE(kSelu) SG2_CASE(kSoftplus) SG2_CASE(kSwish)
#undef SG2_CASE
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
  // alpha, gain, clamp arrive as a float64 [3] input: float attributes would round them to float32.
  template <typename T>
  void Compute(OpKernelContext* ctx, const Tensor* dy, const Tensor& x, const Tensor& b, const Tensor& scalars,
               Params p) {
    OP_REQUIRES(ctx, scalars.dims() == 1 && scalars.dim_size(0) == 3,
                InvalidArgument("FusedBiasAct: params must be [alpha, gain, clamp]"));
    p.alpha = scalars.flat<double>()(0);
    p.gain = scalars.flat<double>()(1);
    p.clamp = scalars.flat<double>()(2);
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
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &out));
    if (x.NumElements() == 0) return;
    std::vector<T> zeros(b.dim_size(0) ? 0 : C, T(0));  // no bias: add zeros, one code path
    Run<T>(ctx, act_, dy ? dy->flat<T>().data() : nullptr, x.flat<T>().data(),
           b.dim_size(0) ? b.flat<T>().data() : zeros.data(), out->flat<T>().data(), x.NumElements() / C, C, p);
  }

  Act act_;
  Params params_{};
};

template <typename T>
class FusedBiasActOp : public FusedBiasActBase {
 public:
  explicit FusedBiasActOp(OpKernelConstruction* ctx) : FusedBiasActBase(ctx) { params_.order = 0; }
  void Compute(OpKernelContext* ctx) override {
    FusedBiasActBase::Compute<T>(ctx, nullptr, ctx->input(0), ctx->input(1), ctx->input(2), params_);
  }
};

template <typename T>
class FusedBiasActDerivOp : public FusedBiasActBase {
 public:
  explicit FusedBiasActDerivOp(OpKernelConstruction* ctx) : FusedBiasActBase(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("order", &params_.order));
    OP_REQUIRES(ctx, params_.order >= 1 && params_.order <= 3,
                InvalidArgument("FusedBiasActDeriv: order must be 1, 2 or 3, got ", params_.order));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    FusedBiasActBase::Compute<T>(ctx, &dy, ctx->input(1), ctx->input(2), ctx->input(3), params_);
  }
};

using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("Sg2FusedBiasAct")
    .Input("x: T")
    .Input("b: T")
    .Input("params: double")
    .Output("y: T")
    .Attr("T: {float, double}")
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
    .Attr("T: {float, double}")
    .Attr("act: string")
    .Attr("order: int")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return absl::OkStatus();
    });

#define SG2_REGISTER(T)                                                                                   \
  REGISTER_KERNEL_BUILDER(                                                                                \
      Name("Sg2FusedBiasAct").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), FusedBiasActOp<T>); \
  REGISTER_KERNEL_BUILDER(Name("Sg2FusedBiasActDeriv").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          FusedBiasActDerivOp<T>);
SG2_REGISTER(float)
SG2_REGISTER(double)
#undef SG2_REGISTER

}  // namespace sg2
