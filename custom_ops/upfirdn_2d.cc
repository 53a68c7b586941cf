// UpFirDn2D on NHWC data in one pass: zero-insertion upsampling by (upy, upx), padding (negative
// values crop), a true 2-D convolution with the filter f [kh, kw], and decimation by (downy, downx):
//
//   y[n, oy, ox, c] = sum_{ky, kx} u[oy * downy + ky, ox * downx + kx, c] * f[kh - 1 - ky, kw - 1 - kx]
//   u[p, q, c]      = x[n, (p - pady0) / upy, (q - padx0) / upx, c] where both divide exactly and
//                     land inside x, else 0.
//
// Only the taps that meet a non-zero of u are visited (a quarter of them for up = 2), and the inner
// loop runs over the contiguous channels. The gradient with respect to x is the same op with the
// flipped filter, up and down swapped and the padding mirrored (stylegan2_tf/ops/custom_ops.py), so
// derivatives of every order exist. On the CPU, bfloat16 tensors are read as float32, summed in
// float32 and rounded once (bfloat16.h). Reference: stylegan2_tf/ops/upfirdn_2d.py.

#include <cstdint>
#include <type_traits>
#include <vector>

#include "bfloat16.h"

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
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;

struct Geometry {
  int upx, upy, downx, downy, padx0, padx1, pady0, pady1;
};

int64_t OutputSize(int64_t in, int up, int pad0, int pad1, int taps, int down) {
  return (in * up + pad0 + pad1 - taps) / down + 1;
}

// For every output position along one axis: the (tap index into the flipped filter, input index)
// pairs that meet a non-zero of the upsampled signal.
struct Tap { int k; int64_t i; };
std::vector<std::vector<Tap>> AxisTaps(int64_t in, int64_t out, int up, int down, int pad0, int taps) {
  std::vector<std::vector<Tap>> plan(out);
  for (int64_t o = 0; o < out; ++o) {
    for (int k = 0; k < taps; ++k) {
      const int64_t p = o * down + k - pad0;  // position in the zero-inserted, unpadded signal
      if (p < 0 || p % up != 0) continue;
      const int64_t i = p / up;
      if (i < in) plan[o].push_back({taps - 1 - k, i});  // true convolution: flipped filter
    }
  }
  return plan;
}

// The attributes, the checks and the output allocation, shared by the CPU and GPU kernels.
class UpFirDn2DBase : public OpKernel {
 public:
  explicit UpFirDn2DBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("upx", &g_.upx));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("upy", &g_.upy));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("downx", &g_.downx));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("downy", &g_.downy));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padx0", &g_.padx0));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padx1", &g_.padx1));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pady0", &g_.pady0));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pady1", &g_.pady1));
    OP_REQUIRES(ctx, g_.upx >= 1 && g_.upy >= 1 && g_.downx >= 1 && g_.downy >= 1,
                InvalidArgument("UpFirDn2D: up and down factors must be >= 1"));
  }

 protected:
  // Checks x and f and allocates y (*y stays null on an error, which is then set on ctx).
  void Prepare(OpKernelContext* ctx, Tensor** y) {
    *y = nullptr;
    const Tensor& x = ctx->input(0);
    const Tensor& f = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == 4, InvalidArgument("UpFirDn2D: x must be [N, H, W, C], got ",
                                                    x.shape().DebugString()));
    OP_REQUIRES(ctx, f.dims() == 2 && f.dim_size(0) >= 1 && f.dim_size(1) >= 1,
                InvalidArgument("UpFirDn2D: the filter must be 2-D [kh, kw], got ", f.shape().DebugString()));
    const int64_t H = x.dim_size(1), W = x.dim_size(2);
    const int kh = static_cast<int>(f.dim_size(0)), kw = static_cast<int>(f.dim_size(1));
    const int64_t OH = OutputSize(H, g_.upy, g_.pady0, g_.pady1, kh, g_.downy);
    const int64_t OW = OutputSize(W, g_.upx, g_.padx0, g_.padx1, kw, g_.downx);
    OP_REQUIRES(ctx, OH >= 1 && OW >= 1 && H * g_.upy + g_.pady0 + g_.pady1 >= kh &&
                         W * g_.upx + g_.padx0 + g_.padx1 >= kw,
                InvalidArgument("UpFirDn2D: the padding leaves nothing to filter (", H, "x", W, " input)"));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({x.dim_size(0), OH, OW, x.dim_size(3)}), y));
  }

  Geometry g_;
};

// The sum's element type: float32 for bfloat16 (stored as uint16_t), else the tensors' own.
inline float Widen(uint16_t v) { return WidenBf16(v); }
inline float Widen(float v) { return v; }
inline double Widen(double v) { return v; }
template <typename S> struct Accumulator { using type = S; };
template <> struct Accumulator<uint16_t> { using type = float; };

// T: the tensors' type; S: the element type of their data (uint16_t for bfloat16).
template <typename T, typename S>
class UpFirDn2DOp : public UpFirDn2DBase {
 public:
  using UpFirDn2DBase::UpFirDn2DBase;
  using A = typename Accumulator<S>::type;

  void Compute(OpKernelContext* ctx) override {
    static_assert(sizeof(T) == sizeof(S), "S must have T's bits");
    Tensor* y = nullptr;
    Prepare(ctx, &y);
    if (!y || y->NumElements() == 0) return;
    const Tensor& x = ctx->input(0);
    const Tensor& f = ctx->input(1);
    const int64_t N = x.dim_size(0), H = x.dim_size(1), W = x.dim_size(2), C = x.dim_size(3);
    const int64_t OH = y->dim_size(1), OW = y->dim_size(2);
    const int kh = static_cast<int>(f.dim_size(0)), kw = static_cast<int>(f.dim_size(1));

    const auto rows = AxisTaps(H, OH, g_.upy, g_.downy, g_.pady0, kh);
    const auto cols = AxisTaps(W, OW, g_.upx, g_.downx, g_.padx0, kw);
    const S* xd = reinterpret_cast<const S*>(x.flat<T>().data());
    const S* fd = reinterpret_cast<const S*>(f.flat<T>().data());
    S* yd = reinterpret_cast<S*>(y->flat<T>().data());

    auto work = [&](int64_t begin, int64_t end) {
      std::vector<A> acc(C);
      for (int64_t r = begin; r < end; ++r) {  // r = n * OH + oy
        const int64_t n = r / OH, oy = r % OH;
        const S* xn = xd + n * H * W * C;
        for (int64_t ox = 0; ox < OW; ++ox) {
          std::fill(acc.begin(), acc.end(), A(0));
          for (const Tap& ty : rows[oy]) {
            for (const Tap& tx : cols[ox]) {
              const A w = Widen(fd[ty.k * kw + tx.k]);
              const S* __restrict src = xn + (ty.i * W + tx.i) * C;
              A* __restrict a = acc.data();
              for (int64_t c = 0; c < C; ++c) a[c] += w * Widen(src[c]);
            }
          }
          S* out = yd + (r * OW + ox) * C;
          if constexpr (std::is_same<S, uint16_t>::value) {
            NarrowBf16(acc.data(), out, C);
          } else {
            std::copy(acc.begin(), acc.end(), out);
          }
        }
      }
    };
    int64_t taps = 0;
    for (const auto& t : rows) taps += static_cast<int64_t>(t.size());
    const int64_t cost = (taps / OH + 1) * (kw / g_.upx + 1) * OW * C;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, N * OH, cost, work);
  }
};

#ifdef SG2_WITH_CUDA
// The GPU kernel: the same checks, then the plain CUDA function (cuda/upfirdn_2d.cu) on the
// op's stream. K is the kernels' element type (half_t for Eigen::half, same bits).
template <typename T, typename K>
class UpFirDn2DGpuOp : public UpFirDn2DBase {
 public:
  using UpFirDn2DBase::UpFirDn2DBase;

  void Compute(OpKernelContext* ctx) override {
    Tensor* y = nullptr;
    Prepare(ctx, &y);
    if (!y || y->NumElements() == 0) return;
    const Tensor& x = ctx->input(0);
    const Tensor& f = ctx->input(1);
    UpFirDn2DArgs<K> a{};
    a.x = reinterpret_cast<const K*>(x.flat<T>().data());
    a.f = reinterpret_cast<const K*>(f.flat<T>().data());
    a.y = reinterpret_cast<K*>(y->flat<T>().data());
    a.n = x.dim_size(0); a.in_h = x.dim_size(1); a.in_w = x.dim_size(2); a.c = x.dim_size(3);
    a.out_h = y->dim_size(1); a.out_w = y->dim_size(2);
    a.kh = static_cast<int>(f.dim_size(0)); a.kw = static_cast<int>(f.dim_size(1));
    a.upx = g_.upx; a.upy = g_.upy; a.downx = g_.downx; a.downy = g_.downy;
    a.padx0 = g_.padx0; a.pady0 = g_.pady0;
    const char* error = LaunchUpFirDn2D<K>(a, GpuStream(ctx));
    OP_REQUIRES(ctx, error == nullptr, tensorflow::errors::Internal("UpFirDn2D: CUDA launch failed: ", error));
  }
};
#endif  // SG2_WITH_CUDA

REGISTER_OP("Sg2UpFirDn2D")
    .Input("x: T")
    .Input("f: T")
    .Output("y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("upx: int")
    .Attr("upy: int")
    .Attr("downx: int")
    .Attr("downy: int")
    .Attr("padx0: int")
    .Attr("padx1: int")
    .Attr("pady0: int")
    .Attr("pady1: int")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle x, f;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &f));
      int upx, upy, downx, downy, padx0, padx1, pady0, pady1;
      TF_RETURN_IF_ERROR(c->GetAttr("upx", &upx));
      TF_RETURN_IF_ERROR(c->GetAttr("upy", &upy));
      TF_RETURN_IF_ERROR(c->GetAttr("downx", &downx));
      TF_RETURN_IF_ERROR(c->GetAttr("downy", &downy));
      TF_RETURN_IF_ERROR(c->GetAttr("padx0", &padx0));
      TF_RETURN_IF_ERROR(c->GetAttr("padx1", &padx1));
      TF_RETURN_IF_ERROR(c->GetAttr("pady0", &pady0));
      TF_RETURN_IF_ERROR(c->GetAttr("pady1", &pady1));
      auto out = [&](int in_dim, int f_dim, int up, int p0, int p1, int down) {
        auto d = c->Dim(x, in_dim), k = c->Dim(f, f_dim);
        if (!c->ValueKnown(d) || !c->ValueKnown(k)) return c->UnknownDim();
        return c->MakeDim(OutputSize(c->Value(d), up, p0, p1, static_cast<int>(c->Value(k)), down));
      };
      c->set_output(0, c->MakeShape({c->Dim(x, 0), out(1, 0, upy, pady0, pady1, downy),
                                     out(2, 1, upx, padx0, padx1, downx), c->Dim(x, 3)}));
      return absl::OkStatus();
    });

// OP<T, K>: T the tensors' type, K the element type of their data in the kernel.
#define SG2_REGISTER(DEVICE, OP, T, K) \
  REGISTER_KERNEL_BUILDER(Name("Sg2UpFirDn2D").Device(tensorflow::DEVICE).TypeConstraint<T>("T"), OP<T, K>);
SG2_REGISTER(DEVICE_CPU, UpFirDn2DOp, Eigen::bfloat16, uint16_t)
SG2_REGISTER(DEVICE_CPU, UpFirDn2DOp, float, float)
SG2_REGISTER(DEVICE_CPU, UpFirDn2DOp, double, double)
#ifdef SG2_WITH_CUDA
SG2_REGISTER(DEVICE_GPU, UpFirDn2DGpuOp, Eigen::half, half_t)
SG2_REGISTER(DEVICE_GPU, UpFirDn2DGpuOp, float, float)
SG2_REGISTER(DEVICE_GPU, UpFirDn2DGpuOp, double, double)
#endif  // SG2_WITH_CUDA
#undef SG2_REGISTER

}  // namespace sg2
