// The epilogue of a StyleGAN2 synthesis layer after its non-fused modulated convolution, in one pass
// over NHWC data (CPU, float32/64):
//   Sg2SynthesisEpilogue(x, d, noise, b) = y = clamp(act(x * d[n, c] + noise[n, p] + b[c]) * gain)
// -- the demodulation (Eq. 2), the per-pixel noise broadcast over channels, bias, activation, gain.
// TensorFlow's ops and FusedBiasAct make three passes for it. Its gradient, also in one pass:
//   Sg2SynthesisEpilogueGrad(dy, x, d, noise, b) = (dx, dd, dnoise, db),  with dz = dy * gain * act'(z) * mask,
//   dx = dz * d,  dd[n, c] = sum of dz * x over n's rows,  dnoise[n, p] = sum of dz over channels,
//   db[c] = sum of dz over all rows.
// The gradient's own gradient (path-length regularization differentiates the generator twice), in
// one pass too: with D = gain * act'(z) * mask (so dz = dy * D), act'' = 0, and upstream gradients
// g_dx, g_dd, g_dnoise, g_db of the gradient's four outputs,
//   Sg2SynthesisEpilogueGradGrad(g_dx, g_dd, g_dnoise, g_db, dy, x, d, noise, b) = (d_dy, d_x, d_d),
//   d_dy = D * (g_dx * d + g_dd * x + g_db + g_dnoise),  d_x = g_dd * dz,
//   d_d[n, c] = sum of g_dx * dz over n's rows
// (any upstream may be empty: none reaches that output). Its gradients with respect to noise and b
// are zero, since D is piecewise constant in z.
// Rows are the pixels of each sample (p indexes them); noise is [N, P] or [1, P] (the same map for
// every sample) or empty (none); b is [C] or empty. The sums are float64, dd, db and d_d in fixed
// blocks (channel_sums.h), so none depends on the thread count. The activation is linear, relu or
// lrelu (their second derivative is zero, which the formulas above and the Python side's higher
// derivatives rely on). Reference and higher derivatives: stylegan2_tf/ops/synthesis_epilogue.py.

#include <cstdint>
#include <string>
#include <vector>

#include "bias_act_math.h"
#include "bias_act_rows.h"
#include "channel_sums.h"
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

// The inputs shared by both ops, checked, with the layout the row loops need.
template <typename T>
struct EpilogueInputs {
  int64_t N = 0, C = 0, rows_per_sample = 0;
  const T *x = nullptr, *d = nullptr, *noise = nullptr, *b = nullptr;
  bool noise_per_sample = false;
  std::vector<T> zeros;  // the bias when there is none: one code path (FusedBiasAct does the same)

  // The pre-activation without the bias, t = x * d (+ noise), of row r into t (C values): the same
  // roundings, in the same order, as the reference's multiply and add. Two loops: in one, GCC
  // would contract the multiply and the add into a fused multiply-add, which rounds once.
  void PreActivation(int64_t r, T* __restrict t) const {
    const int64_t n = r / rows_per_sample;
    const T* __restrict v = x + r * C;
    const T* __restrict s = d + n * C;
    for (int64_t c = 0; c < C; ++c) t[c] = v[c] * s[c];
    if (noise) {
      const T pixel = noise[(noise_per_sample ? n * rows_per_sample : 0) + r % rows_per_sample];
      for (int64_t c = 0; c < C; ++c) t[c] = t[c] + pixel;
    }
  }
};

class SynthesisEpilogueBase : public OpKernel {
 public:
  explicit SynthesisEpilogueBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string act;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("act", &act));
    OP_REQUIRES(ctx, ParseAct(act, &act_) && (act_ == Act::kLinear || act_ == Act::kRelu || act_ == Act::kLrelu),
                InvalidArgument("SynthesisEpilogue: act must be linear, relu or lrelu, got '", act, "'"));
  }

 protected:
  // Checks x, d, noise, b and params (inputs first .. first + 4); false (with the error set on ctx)
  // when they do not fit.
  template <typename T>
  bool Read(OpKernelContext* ctx, int first, EpilogueInputs<T>* in, Params* p) {
    const Tensor &x = ctx->input(first), &d = ctx->input(first + 1), &noise = ctx->input(first + 2),
                 &b = ctx->input(first + 3), &scalars = ctx->input(first + 4);
    auto fail = [&](const auto&... message) {
      ctx->SetStatus(InvalidArgument("SynthesisEpilogue: ", message...));
      return false;
    };
    if (scalars.dims() != 1 || scalars.dim_size(0) != 3) return fail("params must be [alpha, gain, clamp]");
    p->alpha = scalars.flat<double>()(0);
    p->gain = scalars.flat<double>()(1);
    p->clamp = scalars.flat<double>()(2);
    if (x.dims() < 2) return fail("x must be [N, ..., C], got ", x.shape().DebugString());
    in->N = x.dim_size(0);
    in->C = x.dim_size(x.dims() - 1);
    in->rows_per_sample = in->N * in->C ? x.NumElements() / (in->N * in->C) : 0;
    if (d.dims() != 2 || d.dim_size(0) != in->N || d.dim_size(1) != in->C)
      return fail("d must be [", in->N, ", ", in->C, "], got ", d.shape().DebugString());
    const bool with_noise = noise.NumElements() != 0;
    if (with_noise && !(noise.dims() == 2 && (noise.dim_size(0) == in->N || noise.dim_size(0) == 1) &&
                        noise.dim_size(1) == in->rows_per_sample))
      return fail("noise must be [", in->N, " or 1, ", in->rows_per_sample, "] (one value per pixel) or empty, got ",
                  noise.shape().DebugString());
    if (b.dims() != 1 || (b.dim_size(0) != in->C && b.dim_size(0) != 0))
      return fail("b must be [", in->C, "] (the last axis of x) or empty, got ", b.shape().DebugString());
    in->x = x.flat<T>().data();
    in->d = d.flat<T>().data();
    in->noise = with_noise ? noise.flat<T>().data() : nullptr;
    in->noise_per_sample = with_noise && noise.dim_size(0) == in->N && in->N != 1;
    if (b.dim_size(0)) {
      in->b = b.flat<T>().data();
    } else {
      in->zeros.assign(in->C, T(0));
      in->b = in->zeros.data();
    }
    return true;
  }

  int64_t CostPerRow(int64_t C) const { return 4 * C; }

  Act act_;
};

template <typename T>
class SynthesisEpilogueOp : public SynthesisEpilogueBase {
 public:
  using SynthesisEpilogueBase::SynthesisEpilogueBase;

  void Compute(OpKernelContext* ctx) override {
    EpilogueInputs<T> in;
    Params p{};
    if (!Read(ctx, 0, &in, &p)) return;
    p.order = 0;
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &y));
    if (in.N == 0 || in.C == 0 || in.rows_per_sample == 0) return;
    T* out = y->flat<T>().data();
    const int64_t C = in.C;
    auto rows_fn = [&](int64_t begin, int64_t end) {
      std::vector<T> t(C);
      for (int64_t r = begin; r < end; ++r) {
        in.PreActivation(r, t.data());
        AnyRow<T>(act_, nullptr, t.data(), in.b, out + r * C, C, p);
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, in.N * in.rows_per_sample, CostPerRow(C), rows_fn);
  }
};

template <typename T>
class SynthesisEpilogueGradOp : public SynthesisEpilogueBase {
 public:
  using SynthesisEpilogueBase::SynthesisEpilogueBase;

  void Compute(OpKernelContext* ctx) override {
    EpilogueInputs<T> in;
    Params p{};
    if (!Read(ctx, 1, &in, &p)) return;
    p.order = 1;
    const Tensor &dy = ctx->input(0), &x = ctx->input(1);
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                InvalidArgument("SynthesisEpilogue: dy ", dy.shape().DebugString(), " differs from x ",
                                x.shape().DebugString()));
    const int64_t N = in.N, C = in.C, P = in.rows_per_sample;
    const bool with_bias = ctx->input(4).dim_size(0) != 0;
    Tensor *dx = nullptr, *dd = nullptr, *dnoise = nullptr, *db = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(2).shape(), &dd));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, tensorflow::TensorShape({in.noise ? N : 0, P}), &dnoise));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, ctx->input(4).shape(), &db));
    T* ddd = dd->flat<T>().data();
    T* dbd = db->flat<T>().data();
    if (N == 0 || C == 0 || P == 0) {
      for (int64_t i = 0; i < dd->NumElements(); ++i) ddd[i] = T(0);
      for (int64_t i = 0; i < db->NumElements(); ++i) dbd[i] = T(0);
      for (int64_t i = 0; i < dnoise->NumElements(); ++i) dnoise->flat<T>().data()[i] = T(0);
      return;
    }
    const T* dyd = dy.flat<T>().data();
    T* dxd = dx->flat<T>().data();
    T* dnd = in.noise ? dnoise->flat<T>().data() : nullptr;
    // Each block's partials: C sums of dz * x (for dd), then C sums of dz (for db).
    int64_t blocks_per_sample = 0;
    const auto partials = BlockPartials(
        ctx, N, P, 2 * C, CostPerRow(C), &blocks_per_sample, [&](int64_t begin, int64_t end, double* acc) {
          std::vector<T> t(C);
          const T* __restrict s = in.d + (begin / P) * C;
          double* __restrict acc_d = acc;
          double* __restrict acc_b = acc + C;
          for (int64_t r = begin; r < end; ++r) {
            in.PreActivation(r, t.data());
            T* __restrict dz = dxd + r * C;  // dz first, then dx = dz * d in place
            AnyRow<T>(act_, dyd + r * C, t.data(), in.b, dz, C, p);
            const T* __restrict v = in.x + r * C;
            double pixel = 0.0;
            for (int64_t c = 0; c < C; ++c) {
              const double g = double(dz[c]);
              acc_d[c] += g * double(v[c]);
              acc_b[c] += g;
              pixel += g;
              dz[c] = dz[c] * s[c];
            }
            if (dnd) dnd[r] = static_cast<T>(pixel);
          }
        });
    SumPerSample(partials, N, blocks_per_sample, C, ddd, 2 * C, 0);
    if (with_bias) SumAll(partials, N * blocks_per_sample, C, dbd, 2 * C, C);
  }
};

template <typename T>
class SynthesisEpilogueGradGradOp : public SynthesisEpilogueBase {
 public:
  using SynthesisEpilogueBase::SynthesisEpilogueBase;

  void Compute(OpKernelContext* ctx) override {
    EpilogueInputs<T> in;
    Params p{};
    if (!Read(ctx, 5, &in, &p)) return;
    p.order = 1;
    const Tensor &g_dx = ctx->input(0), &g_dd = ctx->input(1), &g_dnoise = ctx->input(2), &g_db = ctx->input(3),
                 &dy = ctx->input(4), &x = ctx->input(5);
    const int64_t N = in.N, C = in.C, P = in.rows_per_sample;
    auto fail = [&](const auto&... message) { ctx->SetStatus(InvalidArgument("SynthesisEpilogue: ", message...)); };
    if (dy.shape() != x.shape())
      return fail("dy ", dy.shape().DebugString(), " differs from x ", x.shape().DebugString());
    if (g_dx.NumElements() != 0 && g_dx.shape() != x.shape())
      return fail("g_dx must be empty or ", x.shape().DebugString(), ", got ", g_dx.shape().DebugString());
    if (g_dd.NumElements() != 0 && !(g_dd.dims() == 2 && g_dd.dim_size(0) == N && g_dd.dim_size(1) == C))
      return fail("g_dd must be empty or [", N, ", ", C, "], got ", g_dd.shape().DebugString());
    if (g_dnoise.NumElements() != 0 &&
        !(g_dnoise.dims() == 2 && (g_dnoise.dim_size(0) == N || g_dnoise.dim_size(0) == 1) &&
          g_dnoise.dim_size(1) == P))
      return fail("g_dnoise must be empty or [", N, " or 1, ", P, "], got ", g_dnoise.shape().DebugString());
    if (g_db.NumElements() != 0 && !(g_db.dims() == 1 && g_db.dim_size(0) == C))
      return fail("g_db must be empty or [", C, "], got ", g_db.shape().DebugString());
    Tensor *d_dy = nullptr, *d_x = nullptr, *d_d = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &d_dy));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, x.shape(), &d_x));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(6).shape(), &d_d));
    T* ddd = d_d->flat<T>().data();
    if (N == 0 || C == 0 || P == 0) {
      for (int64_t i = 0; i < d_d->NumElements(); ++i) ddd[i] = T(0);
      return;
    }
    const T* dyd = dy.flat<T>().data();
    const T* gx = g_dx.NumElements() ? g_dx.flat<T>().data() : nullptr;
    const T* gd = g_dd.NumElements() ? g_dd.flat<T>().data() : nullptr;
    const T* gn = g_dnoise.NumElements() ? g_dnoise.flat<T>().data() : nullptr;
    const T* gb = g_db.NumElements() ? g_db.flat<T>().data() : nullptr;
    const bool gn_per_sample = gn && g_dnoise.dim_size(0) == N && N != 1;
    T* out_dy = d_dy->flat<T>().data();
    T* out_x = d_x->flat<T>().data();
    int64_t blocks_per_sample = 0;
    const auto partials = BlockPartials(
        ctx, N, P, C, 2 * CostPerRow(C), &blocks_per_sample, [&](int64_t begin, int64_t end, double* acc) {
          std::vector<T> t(C), dz(C), u(C);
          const int64_t n = begin / P;
          const T* __restrict s = in.d + n * C;
          const T* __restrict gdn = gd ? gd + n * C : nullptr;
          for (int64_t r = begin; r < end; ++r) {
            in.PreActivation(r, t.data());
            AnyRow<T>(act_, dyd + r * C, t.data(), in.b, dz.data(), C, p);
            // u = g_dx * d + g_dd * x + g_db + g_dnoise, added in the reference's order.
            const T* __restrict v = in.x + r * C;
            T* __restrict uu = u.data();
            if (gx) {
              const T* __restrict g = gx + r * C;
              for (int64_t c = 0; c < C; ++c) uu[c] = g[c] * s[c];
            } else {
              for (int64_t c = 0; c < C; ++c) uu[c] = T(0);
            }
            if (gdn) {
              T* __restrict o = out_x + r * C;  // g_dd * x first (d_x is written below)
              for (int64_t c = 0; c < C; ++c) o[c] = v[c] * gdn[c];
              for (int64_t c = 0; c < C; ++c) uu[c] = uu[c] + o[c];
            }
            if (gb) {
              for (int64_t c = 0; c < C; ++c) uu[c] = uu[c] + gb[c];
            }
            if (gn) {
              const T pixel = gn[(gn_per_sample ? n * P : 0) + r % P];
              for (int64_t c = 0; c < C; ++c) uu[c] = uu[c] + pixel;
            }
            AnyRow<T>(act_, uu, t.data(), in.b, out_dy + r * C, C, p);
            const T* __restrict z = dz.data();
            T* __restrict o = out_x + r * C;
            if (gdn) {
              for (int64_t c = 0; c < C; ++c) o[c] = z[c] * gdn[c];
            } else {
              for (int64_t c = 0; c < C; ++c) o[c] = T(0);
            }
            if (gx) {
              const T* __restrict g = gx + r * C;
              for (int64_t c = 0; c < C; ++c) acc[c] += double(g[c]) * double(z[c]);
            }
          }
        });
    SumPerSample(partials, N, blocks_per_sample, C, ddd);
  }
};

using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("Sg2SynthesisEpilogue")
    .Input("x: T")
    .Input("d: T")
    .Input("noise: T")
    .Input("b: T")
    .Input("params: double")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("act: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("Sg2SynthesisEpilogueGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("d: T")
    .Input("noise: T")
    .Input("b: T")
    .Input("params: double")
    .Output("dx: T")
    .Output("dd: T")
    .Output("dnoise: T")
    .Output("db: T")
    .Attr("T: {float, double}")
    .Attr("act: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->Matrix(InferenceContext::kUnknownDim, InferenceContext::kUnknownDim));
      c->set_output(3, c->input(4));
      return absl::OkStatus();
    });

REGISTER_OP("Sg2SynthesisEpilogueGradGrad")
    .Input("g_dx: T")
    .Input("g_dd: T")
    .Input("g_dnoise: T")
    .Input("g_db: T")
    .Input("dy: T")
    .Input("x: T")
    .Input("d: T")
    .Input("noise: T")
    .Input("b: T")
    .Input("params: double")
    .Output("d_dy: T")
    .Output("d_x: T")
    .Output("d_d: T")
    .Attr("T: {float, double}")
    .Attr("act: string")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(5));
      c->set_output(1, c->input(5));
      c->set_output(2, c->input(6));
      return absl::OkStatus();
    });

#define SG2_REGISTER(T)                                                                                          \
  REGISTER_KERNEL_BUILDER(Name("Sg2SynthesisEpilogue").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
                          SynthesisEpilogueOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(Name("Sg2SynthesisEpilogueGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          SynthesisEpilogueGradOp<T>);                                                           \
  REGISTER_KERNEL_BUILDER(                                                                                       \
      Name("Sg2SynthesisEpilogueGradGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),                \
      SynthesisEpilogueGradGradOp<T>);
SG2_REGISTER(float)
SG2_REGISTER(double)
#undef SG2_REGISTER

}  // namespace sg2
