// The gradient of a per-sample channel scaling y[n, ..., c] = x[n, ..., c] * s[n, c] (the style
// modulation and the demodulation of StyleGAN2's non-fused modulated convolution) in one pass:
//   Sg2ScaleChannelsGrad(dy, x, s) = (dx, ds),  dx = dy * s,  ds[n, c] = sum over n's rows of dy * x.
// TensorFlow's own gradient of the broadcast multiply makes three passes (dy * s, dy * x, then a
// reduction). The sums are taken in float64 in fixed blocks (channel_sums.h), so they do not
// depend on the thread count. The forward multiply stays TensorFlow's; the Python side
// (stylegan2_tf/ops/scale_channels.py) has the reference and the higher derivatives.

#include <cstdint>

#include "channel_sums.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace sg2 {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::errors::InvalidArgument;

template <typename T>
class ScaleChannelsGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &dy = ctx->input(0), &x = ctx->input(1), &s = ctx->input(2);
    OP_REQUIRES(ctx, x.dims() >= 2, InvalidArgument("ScaleChannelsGrad: x must be [N, ..., C], got ",
                                                    x.shape().DebugString()));
    OP_REQUIRES(ctx, dy.shape() == x.shape(), InvalidArgument("ScaleChannelsGrad: dy ", dy.shape().DebugString(),
                                                              " differs from x ", x.shape().DebugString()));
    const int64_t N = x.dim_size(0), C = x.dim_size(x.dims() - 1);
    OP_REQUIRES(ctx, s.dims() == 2 && s.dim_size(0) == N && s.dim_size(1) == C,
                InvalidArgument("ScaleChannelsGrad: s must be [", N, ", ", C, "], got ", s.shape().DebugString()));
    Tensor *dx = nullptr, *ds = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, s.shape(), &ds));
    if (N == 0 || C == 0) return;
    const int64_t rows_per_sample = x.NumElements() / (N * C);
    const T* dyd = dy.flat<T>().data();
    const T* xd = x.flat<T>().data();
    const T* sd = s.flat<T>().data();
    T* dxd = dx->flat<T>().data();
    if (rows_per_sample == 0) {
      for (int64_t i = 0; i < N * C; ++i) ds->flat<T>().data()[i] = T(0);
      return;
    }
    int64_t blocks_per_sample = 0;
    const auto partials = BlockPartials(
        ctx, N, rows_per_sample, C, 3 * C, &blocks_per_sample, [&](int64_t begin, int64_t end, double* acc) {
          const T* __restrict scale = sd + (begin / rows_per_sample) * C;
          for (int64_t r = begin; r < end; ++r) {
            const T* __restrict g = dyd + r * C;
            const T* __restrict v = xd + r * C;
            T* __restrict out = dxd + r * C;
            for (int64_t c = 0; c < C; ++c) {
              out[c] = g[c] * scale[c];
              acc[c] += double(g[c]) * double(v[c]);
            }
          }
        });
    SumPerSample(partials, N, blocks_per_sample, C, ds->flat<T>().data());
  }
};

REGISTER_OP("Sg2ScaleChannelsGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("s: T")
    .Output("dx: T")
    .Output("ds: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("Sg2ScaleChannelsGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
                        ScaleChannelsGradOp<float>);
REGISTER_KERNEL_BUILDER(Name("Sg2ScaleChannelsGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<double>("T"),
                        ScaleChannelsGradOp<double>);

}  // namespace sg2
