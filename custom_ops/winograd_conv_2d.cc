// Winograd's F(2x2, 3x3) stride-1 convolution and its filter gradient on the CPU, one block of
// tiles at a time, so that the transformed tiles never leave the cache:
//   Sg2WinogradConv2D(x, w)            y = conv(x padded by pads, w)        w [3, 3, C, O]
//   Sg2WinogradFilterGradient(x, dy)   dw[i, j] = sum over (n, p, q) of x_pad[n, p + i, q + j]^T dy[n, p, q]
// The algorithm (Lavin and Gray 2016): a 2x2 output tile is A^T [(G g G^T) * (B^T d B)] A for its
// 4x4 input tile d, i.e. 16 products [tiles, C] x [C, O]; the filter gradient is
// G^T [sum over tiles of (B^T d B) * (A dY A^T)] G, 16 products [C, tiles] x [tiles, O]. The
// reference (stylegan2_tf/ops/conv_2d.py) runs the same steps as whole-tensor TensorFlow ops, each a
// pass over 4x the input; here a block of tiles is transformed, multiplied (Eigen's matrix
// product) and transformed back while it is in the cache. B, A and G are the reference's (A's last
// column and G's last row negated together). Padding is read as zeros, never materialized; an odd
// output side computes one more row or column and drops it. The input gradient is the forward
// convolution of dy with the turned kernel (registered in Python), so both ops serve every order.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace sg2 {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixMap = Eigen::Map<RowMajor<T>>;
template <typename T>
using ConstMatrixMap = Eigen::Map<const RowMajor<T>>;

// Where the 2x2 output tiles lie: tile (n, p, q) covers outputs (2p..2p+1, 2q..2q+1) and reads
// the padded input rows 2p..2p+3 and columns 2q..2q+3.
struct Tiling {
  int64_t N, H, W, C, O;
  int64_t pad_top, pad_left, out_h, out_w;
  int64_t rows, cols;  // tiles per image: ceil(out / 2)

  int64_t count() const { return N * rows * cols; }
  // Flat index -> the tile's first padded input row / column and its image.
  void Locate(int64_t tile, int64_t* n, int64_t* row, int64_t* col) const {
    *n = tile / (rows * cols);
    *row = 2 * ((tile / cols) % rows);
    *col = 2 * (tile % cols);
  }
};

// Tiles per block: enough rows for the products to run near their peak, few enough that a block's
// transformed tiles stay in the cache (16 x 64 x 128 channels x 4 bytes = 512 KiB); 32 and 128
// measured slower over 64-512 channels.
// Fixed, never the thread count's, so that the results do not depend on it either.
constexpr int64_t kTilesPerBlock = 64;

// B^T d B of `count` tiles from `first` on, into v [16][.][C], `plane` elements from one of the 16
// matrices to the next.
template <typename T>
void InputTransform(const Tiling& g, const T* x, const T* zeros, int64_t first, int64_t count, int64_t plane, T* v) {
  const int64_t C = g.C;
  for (int64_t t = 0; t < count; ++t) {
    int64_t n, row, col;
    g.Locate(first + t, &n, &row, &col);
    const T* d[16];
    for (int i = 0; i < 4; ++i) {
      const int64_t r = row + i - g.pad_top;
      for (int j = 0; j < 4; ++j) {
        const int64_t s = col + j - g.pad_left;
        d[4 * i + j] = (r >= 0 && r < g.H && s >= 0 && s < g.W) ? x + ((n * g.H + r) * g.W + s) * C : zeros;
      }
    }
    T* out = v + t * C;
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      T b[4][4];  // B^T d: its rows
      for (int j = 0; j < 4; ++j) {
        b[0][j] = d[j][c] - d[8 + j][c];
        b[1][j] = d[4 + j][c] + d[8 + j][c];
        b[2][j] = d[8 + j][c] - d[4 + j][c];
        b[3][j] = d[4 + j][c] - d[12 + j][c];
      }
      for (int i = 0; i < 4; ++i) {  // (B^T d) B
        out[(4 * i + 0) * plane + c] = b[i][0] - b[i][2];
        out[(4 * i + 1) * plane + c] = b[i][1] + b[i][2];
        out[(4 * i + 2) * plane + c] = b[i][2] - b[i][1];
        out[(4 * i + 3) * plane + c] = b[i][1] - b[i][3];
      }
    }
  }
}

// A^T m A of `count` tiles' products m [16][count][O], written to y; outputs past an odd side go
// to `discard`.
template <typename T>
void OutputTransform(const Tiling& g, const T* m, int64_t first, int64_t count, T* y, T* discard) {
  const int64_t O = g.O, plane = count * O;
  for (int64_t t = 0; t < count; ++t) {
    int64_t n, row, col;
    g.Locate(first + t, &n, &row, &col);
    T* out[2][2];
    for (int a = 0; a < 2; ++a) {
      for (int b = 0; b < 2; ++b) {
        const bool inside = row + a < g.out_h && col + b < g.out_w;
        out[a][b] = inside ? y + ((n * g.out_h + row + a) * g.out_w + col + b) * O : discard;
      }
    }
    const T* in = m + t * O;
#pragma GCC ivdep
    for (int64_t o = 0; o < O; ++o) {
      T s[2][4];  // A^T m: its rows
      for (int j = 0; j < 4; ++j) {
        s[0][j] = in[j * plane + o] + in[(4 + j) * plane + o] + in[(8 + j) * plane + o];
        s[1][j] = in[(4 + j) * plane + o] - in[(8 + j) * plane + o] + in[(12 + j) * plane + o];
      }
      for (int a = 0; a < 2; ++a) {  // (A^T m) A
        out[a][0][o] = s[a][0] + s[a][1] + s[a][2];
        out[a][1][o] = s[a][1] - s[a][2] + s[a][3];
      }
    }
  }
}

// A dY A^T of `count` tiles of dy (zeros past an odd side), into e [16][.][O] (`plane` apart): the
// adjoint of OutputTransform.
template <typename T>
void OutputGradientTransform(const Tiling& g, const T* dy, const T* zeros, int64_t first, int64_t count,
                             int64_t plane, T* e) {
  const int64_t O = g.O;
  for (int64_t t = 0; t < count; ++t) {
    int64_t n, row, col;
    g.Locate(first + t, &n, &row, &col);
    const T* d[2][2];
    for (int a = 0; a < 2; ++a) {
      for (int b = 0; b < 2; ++b) {
        const bool inside = row + a < g.out_h && col + b < g.out_w;
        d[a][b] = inside ? dy + ((n * g.out_h + row + a) * g.out_w + col + b) * O : zeros;
      }
    }
    T* out = e + t * O;
#pragma GCC ivdep
    for (int64_t o = 0; o < O; ++o) {
      T r[4][2];  // A dY: its rows
      for (int b = 0; b < 2; ++b) {
        r[0][b] = d[0][b][o];
        r[1][b] = d[0][b][o] + d[1][b][o];
        r[2][b] = d[0][b][o] - d[1][b][o];
        r[3][b] = d[1][b][o];
      }
      for (int i = 0; i < 4; ++i) {  // (A dY) A^T
        out[(4 * i + 0) * plane + o] = r[i][0];
        out[(4 * i + 1) * plane + o] = r[i][0] + r[i][1];
        out[(4 * i + 2) * plane + o] = r[i][0] - r[i][1];
        out[(4 * i + 3) * plane + o] = r[i][1];
      }
    }
  }
}

// G w G^T for every (c, o): u [16][C][O] from w [3][3][C][O].
template <typename T>
void FilterTransform(const T* w, int64_t C, int64_t O, T* u) {
  const int64_t plane = C * O;
#pragma GCC ivdep
  for (int64_t k = 0; k < plane; ++k) {
    T gw[4][3];  // G w: its rows
    for (int j = 0; j < 3; ++j) {
      const T w0 = w[j * plane + k], w1 = w[(3 + j) * plane + k], w2 = w[(6 + j) * plane + k];
      gw[0][j] = w0;
      gw[1][j] = T(0.5) * (w0 + w1 + w2);
      gw[2][j] = T(0.5) * (w0 - w1 + w2);
      gw[3][j] = -w2;
    }
    for (int i = 0; i < 4; ++i) {  // (G w) G^T
      u[(4 * i + 0) * plane + k] = gw[i][0];
      u[(4 * i + 1) * plane + k] = T(0.5) * (gw[i][0] + gw[i][1] + gw[i][2]);
      u[(4 * i + 2) * plane + k] = T(0.5) * (gw[i][0] - gw[i][1] + gw[i][2]);
      u[(4 * i + 3) * plane + k] = -gw[i][2];
    }
  }
}

// G^T s G for every (c, o): dw [3][3][C][O] from the summed products s [16][C][O] (the adjoint of
// FilterTransform).
template <typename T>
void FilterGradientTransform(const T* s, int64_t C, int64_t O, T* dw) {
  const int64_t plane = C * O;
#pragma GCC ivdep
  for (int64_t k = 0; k < plane; ++k) {
    T gs[3][4];  // G^T s: its rows
    for (int j = 0; j < 4; ++j) {
      const T s0 = s[j * plane + k], s1 = s[(4 + j) * plane + k], s2 = s[(8 + j) * plane + k],
              s3 = s[(12 + j) * plane + k];
      gs[0][j] = s0 + T(0.5) * (s1 + s2);
      gs[1][j] = T(0.5) * (s1 - s2);
      gs[2][j] = T(0.5) * (s1 + s2) - s3;
    }
    for (int i = 0; i < 3; ++i) {  // (G^T s) G
      dw[(3 * i + 0) * plane + k] = gs[i][0] + T(0.5) * (gs[i][1] + gs[i][2]);
      dw[(3 * i + 1) * plane + k] = T(0.5) * (gs[i][1] - gs[i][2]);
      dw[(3 * i + 2) * plane + k] = T(0.5) * (gs[i][1] + gs[i][2]) - gs[i][3];
    }
  }
}

// The attrs and x's shape -> the tiling; `outputs` is O (from w or dy).
tensorflow::Status MakeTiling(const char* op, const Tensor& x, const std::vector<int>& pads, int64_t outputs,
                              Tiling* g) {
  if (x.dims() != 4) return InvalidArgument(op, ": x must be [N, H, W, C], got ", x.shape().DebugString());
  g->N = x.dim_size(0), g->H = x.dim_size(1), g->W = x.dim_size(2), g->C = x.dim_size(3), g->O = outputs;
  g->pad_top = pads[0], g->pad_left = pads[2];
  g->out_h = g->H + pads[0] + pads[1] - 2, g->out_w = g->W + pads[2] + pads[3] - 2;
  if (g->out_h < 1 || g->out_w < 1) {
    return InvalidArgument(op, ": x ", x.shape().DebugString(), " padded by [", pads[0], ", ", pads[1], ", ",
                           pads[2], ", ", pads[3], "] is smaller than the 3x3 kernel");
  }
  g->rows = (g->out_h + 1) / 2, g->cols = (g->out_w + 1) / 2;
  return absl::OkStatus();
}

class WinogradOp : public OpKernel {
 public:
  explicit WinogradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pads", &pads_));
    OP_REQUIRES(ctx, pads_.size() == 4 && *std::min_element(pads_.begin(), pads_.end()) >= 0,
                InvalidArgument("pads must be 4 non-negative amounts [top, bottom, left, right]"));
  }

 protected:
  std::vector<int> pads_;
};

template <typename T>
class WinogradConv2DOp : public WinogradOp {
 public:
  using WinogradOp::WinogradOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &w = ctx->input(1);
    OP_REQUIRES(ctx, w.dims() == 4 && w.dim_size(0) == 3 && w.dim_size(1) == 3 && x.dims() == 4 &&
                         w.dim_size(2) == x.dim_size(3),
                InvalidArgument("WinogradConv2D: w must be [3, 3, C, O] for x [N, H, W, C], got w ",
                                w.shape().DebugString(), " and x ", x.shape().DebugString()));
    Tiling g;
    OP_REQUIRES_OK(ctx, MakeTiling("WinogradConv2D", x, pads_, w.dim_size(3), &g));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.N, g.out_h, g.out_w, g.O}), &y));
    if (y->NumElements() == 0) return;
    const int64_t C = g.C, O = g.O;
    std::vector<T> u(16 * C * O), zeros(C, T(0));
    if (C > 0) FilterTransform(w.flat<T>().data(), C, O, u.data());
    const T* xd = x.flat<T>().data();
    T* yd = y->flat<T>().data();
    const int64_t tiles = g.count(), per_block = std::min(kTilesPerBlock, tiles);
    const int64_t blocks = (tiles + per_block - 1) / per_block;
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> v(16 * per_block * C), m(16 * per_block * O), discard(O);
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * per_block, count = std::min(per_block, tiles - first);
        InputTransform(g, xd, zeros.data(), first, count, count * C, v.data());
        for (int k = 0; k < 16; ++k) {
          MatrixMap<T>(m.data() + k * count * O, count, O).noalias() =
              ConstMatrixMap<T>(v.data() + k * count * C, count, C) *
              ConstMatrixMap<T>(u.data() + k * C * O, C, O);
        }
        OutputTransform(g, m.data(), first, count, yd, discard.data());
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, blocks, 16 * 2 * per_block * (C + 1) * O, work);
  }
};

template <typename T>
class WinogradFilterGradientOp : public WinogradOp {
 public:
  using WinogradOp::WinogradOp;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &dy = ctx->input(1);
    OP_REQUIRES(ctx, dy.dims() == 4, InvalidArgument("WinogradFilterGradient: dy must be [N, Ho, Wo, O], got ",
                                                     dy.shape().DebugString()));
    Tiling g;
    OP_REQUIRES_OK(ctx, MakeTiling("WinogradFilterGradient", x, pads_, dy.dim_size(3), &g));
    OP_REQUIRES(ctx, dy.dim_size(0) == g.N && dy.dim_size(1) == g.out_h && dy.dim_size(2) == g.out_w,
                InvalidArgument("WinogradFilterGradient: dy ", dy.shape().DebugString(), " does not match x ",
                                x.shape().DebugString(), "'s output [", g.N, ", ", g.out_h, ", ", g.out_w, ", O]"));
    const int64_t C = g.C, O = g.O;
    Tensor* dw = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({3, 3, C, O}), &dw));
    if (dw->NumElements() == 0) return;
    // The sum over tiles runs block after block in order, each block's 16 products split across
    // threads: every sum is taken in the same order whatever the thread count.
    std::vector<T> s(16 * C * O, T(0)), zeros_x(C, T(0)), zeros_dy(O, T(0));
    const int64_t tiles = g.count(), per_block = std::min(4 * kTilesPerBlock, tiles);
    std::vector<T> v(16 * per_block * C), e(16 * per_block * O);
    const T* xd = x.flat<T>().data();
    const T* dyd = dy.flat<T>().data();
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    for (int64_t first = 0; first < tiles; first += per_block) {
      const int64_t count = std::min(per_block, tiles - first);
      tensorflow::Shard(workers->num_threads, workers->workers, count, 48 * (C + O), [&](int64_t begin, int64_t end) {
        InputTransform(g, xd, zeros_x.data(), first + begin, end - begin, count * C, v.data() + begin * C);
        OutputGradientTransform(g, dyd, zeros_dy.data(), first + begin, end - begin, count * O, e.data() + begin * O);
      });
      tensorflow::Shard(workers->num_threads, workers->workers, 16, 2 * count * C * O, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
          MatrixMap<T>(s.data() + k * C * O, C, O).noalias() +=
              ConstMatrixMap<T>(v.data() + k * count * C, count, C).transpose() *
              ConstMatrixMap<T>(e.data() + k * count * O, count, O);
        }
      });
    }
    FilterGradientTransform(s.data(), C, O, dw->flat<T>().data());
  }
};

tensorflow::Status PadsAttr(tensorflow::shape_inference::InferenceContext* c, std::vector<int>* pads) {
  TF_RETURN_IF_ERROR(c->GetAttr("pads", pads));
  if (pads->size() != 4) return InvalidArgument("pads must be 4 amounts [top, bottom, left, right]");
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("Sg2WinogradConv2D")
    .Input("x: T")
    .Input("w: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("pads: list(int)")
    .Attr("form_forced: bool = false")  // read by the gradient (Python): the input gradient's form
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      using tensorflow::shape_inference::DimensionHandle;
      std::vector<int> pads;
      TF_RETURN_IF_ERROR(PadsAttr(c, &pads));
      auto x = c->input(0), w = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(w, 4, &w));
      DimensionHandle h, wd;
      TF_RETURN_IF_ERROR(c->Add(c->Dim(x, 1), pads[0] + pads[1] - 2, &h));
      TF_RETURN_IF_ERROR(c->Add(c->Dim(x, 2), pads[2] + pads[3] - 2, &wd));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), h, wd, c->Dim(w, 3)}));
      return absl::OkStatus();
    });

REGISTER_OP("Sg2WinogradFilterGradient")
    .Input("x: T")
    .Input("dy: T")
    .Output("dw: T")
    .Attr("T: {float, double}")
    .Attr("pads: list(int)")
    .Attr("form_forced: bool = false")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      std::vector<int> pads;
      TF_RETURN_IF_ERROR(PadsAttr(c, &pads));
      auto x = c->input(0), dy = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(dy, 4, &dy));
      c->set_output(0, c->MakeShape({3, 3, c->Dim(x, 3), c->Dim(dy, 3)}));
      return absl::OkStatus();
    });

#define SG2_REGISTER_WINOGRAD(T)                                                                            \
  REGISTER_KERNEL_BUILDER(Name("Sg2WinogradConv2D").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          WinogradConv2DOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                                                   \
      Name("Sg2WinogradFilterGradient").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),               \
      WinogradFilterGradientOp<T>);
SG2_REGISTER_WINOGRAD(float)
SG2_REGISTER_WINOGRAD(double)

}  // namespace sg2
