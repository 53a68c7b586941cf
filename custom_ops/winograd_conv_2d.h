// Winograd's F(2x2, 3x3) and F(4x4, 3x3) stride-1 convolution and its filter gradient on the CPU,
// one block of tiles at a time, so that the transformed tiles never leave the cache:
//   Sg2WinogradConv2D(x, w)            y = conv(x padded by pads, w)        w [3, 3, C, O]
//   Sg2WinogradFilterGradient(x, dy)   dw[i, j] = sum over (n, p, q) of x_pad[n, p + i, q + j]^T dy[n, p, q]
// The algorithm (Lavin and Gray 2016): an m x m output tile (attr `tile`: m = 2 or 4) is
// A^T [(G g G^T) * (B^T d B)] A for its (m + 2) x (m + 2) input tile d, i.e. (m + 2)^2 products
// [tiles, C] x [C, O] for m^2 outputs (9 multiply-adds per output directly; 4 with m = 2, 2.25 with
// m = 4, whose float32 rounding errors are about 5-10x larger); the filter gradient is
// G^T [sum over tiles of (B^T d B) * (A dY A^T)] G, (m + 2)^2 products [C, tiles] x [tiles, O].
// The reference (stylegan2_tf/ops/conv_2d.py, m = 2) runs the same steps as whole-tensor
// TensorFlow ops, each a pass over 4x the input; here a block of tiles is transformed, multiplied
// (Eigen's matrix product) and transformed back while it is in the cache (the forward pass on small
// images, whose few blocks would leave threads idle, takes the three steps one after another
// instead, each shared across the threads). Padding is read as
// zeros, never materialized; a side that is not a multiple of m computes up to m - 1 more rows or
// columns and drops them. The input gradient is the forward convolution of dy with the turned
// kernel (registered in Python), so both ops serve every order.
//
// The algorithm and the two kernels' classes, templated on the element type; winograd_conv_2d.cc
// registers the ops and their float32 kernels, winograd_conv_2d_double.cc the float64 ones (a
// translation unit each, so that the build compiles them in parallel).
#ifndef SG2_WINOGRAD_CONV_2D_H_
#define SG2_WINOGRAD_CONV_2D_H_

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

// The 1-D transforms of F(m, 3), m = 2 or 4 outputs per tile from m + 2 inputs (Lavin and Gray's
// interpolation points: 0, 1, -1 and infinity for m = 2; also 2 and -2 for m = 4):
//   Input      b = B^T d   (m + 2 -> m + 2)      Output     y = A^T p   (m + 2 -> m)
//   Filter     u = G g     (3 -> m + 2)          and the adjoints the filter gradient takes:
//   OutputAdj  e = A y     (m -> m + 2)          FilterAdj  g = G^T s   (m + 2 -> 3)
// Each 2-D transform applies its 1-D one to the columns, then to the rows. B, A and G for m = 2
// are the reference's (A's last column and G's last row negated together).
template <int M>
struct F;

template <>
struct F<2> {
  template <typename T>
  static void Input(const T* d, T* b) {
    b[0] = d[0] - d[2], b[1] = d[1] + d[2], b[2] = d[2] - d[1], b[3] = d[1] - d[3];
  }
  template <typename T>
  static void Output(const T* p, T* y) {
    y[0] = p[0] + p[1] + p[2], y[1] = p[1] - p[2] + p[3];
  }
  template <typename T>
  static void Filter(const T* g, T* u) {
    u[0] = g[0], u[1] = T(0.5) * (g[0] + g[1] + g[2]), u[2] = T(0.5) * (g[0] - g[1] + g[2]), u[3] = -g[2];
  }
  template <typename T>
  static void OutputAdj(const T* y, T* e) {
    e[0] = y[0], e[1] = y[0] + y[1], e[2] = y[0] - y[1], e[3] = y[1];
  }
  template <typename T>
  static void FilterAdj(const T* s, T* g) {
    g[0] = s[0] + T(0.5) * (s[1] + s[2]), g[1] = T(0.5) * (s[1] - s[2]), g[2] = T(0.5) * (s[1] + s[2]) - s[3];
  }
};

template <>
struct F<4> {
  template <typename T>
  static void Input(const T* d, T* b) {
    b[0] = T(4) * d[0] - T(5) * d[2] + d[4];
    b[1] = d[3] + d[4] - T(4) * (d[1] + d[2]);
    b[2] = d[4] - d[3] + T(4) * (d[1] - d[2]);
    b[3] = d[4] - d[2] + T(2) * (d[3] - d[1]);
    b[4] = d[4] - d[2] + T(2) * (d[1] - d[3]);
    b[5] = T(4) * d[1] - T(5) * d[3] + d[5];
  }
  template <typename T>
  static void Output(const T* p, T* y) {
    const T a = p[1] + p[2], b = p[1] - p[2], c = p[3] + p[4], d = p[3] - p[4];
    y[0] = p[0] + a + c, y[1] = b + T(2) * d, y[2] = a + T(4) * c, y[3] = b + T(8) * d + p[5];
  }
  template <typename T>
  static void Filter(const T* g, T* u) {
    const T even = g[0] + g[2];
    u[0] = T(0.25) * g[0];
    u[1] = T(-1) / T(6) * (even + g[1]);
    u[2] = T(-1) / T(6) * (even - g[1]);
    u[3] = T(1) / T(24) * g[0] + T(1) / T(12) * g[1] + T(1) / T(6) * g[2];
    u[4] = T(1) / T(24) * g[0] - T(1) / T(12) * g[1] + T(1) / T(6) * g[2];
    u[5] = g[2];
  }
  template <typename T>
  static void OutputAdj(const T* y, T* e) {
    const T even = y[0] + y[2], odd = y[1] + y[3];
    e[0] = y[0];
    e[1] = even + odd;
    e[2] = even - odd;
    e[3] = y[0] + T(4) * y[2] + T(2) * (y[1] + T(4) * y[3]);
    e[4] = y[0] + T(4) * y[2] - T(2) * (y[1] + T(4) * y[3]);
    e[5] = y[3];
  }
  template <typename T>
  static void FilterAdj(const T* s, T* g) {
    const T a = s[1] + s[2], b = s[1] - s[2], c = s[3] + s[4], d = s[3] - s[4];
    g[0] = T(0.25) * s[0] - T(1) / T(6) * a + T(1) / T(24) * c;
    g[1] = T(-1) / T(6) * b + T(1) / T(12) * d;
    g[2] = T(-1) / T(6) * a + T(1) / T(6) * c + s[5];
  }
};

// Where the MxM output tiles lie: tile (n, p, q) covers outputs (M p .. M p + M - 1, M q ..) and
// reads the padded input rows M p .. M p + M + 1 and the same columns.
struct Tiling {
  int64_t N, H, W, C, O;
  int64_t pad_top, pad_left, out_h, out_w;
  int64_t tile, rows, cols;  // outputs per tile side; tiles per image: ceil(out / tile)

  int64_t count() const { return N * rows * cols; }
  // Flat index -> the tile's first padded input row / column and its image.
  void Locate(int64_t index, int64_t* n, int64_t* row, int64_t* col) const {
    *n = index / (rows * cols);
    *row = tile * ((index / cols) % rows);
    *col = tile * (index % cols);
  }
};

// Tiles per block: enough rows for the products to run near their peak, few enough that a block's
// transformed tiles stay in the cache (F(2x2): 16 x 64 x 128 channels x 4 bytes = 512 KiB); 32 and
// 128 measured slower for F(2x2) over 64-512 channels, 32 about even for F(4x4).
// Fixed, never the thread count's, so that the results do not depend on it either.
constexpr int64_t kTilesPerBlock = 64;
// With fewer blocks than this (16x16 images and below), the forward pass shares each of its steps
// out across the threads instead (the filter gradient always does).
constexpr int64_t kMinBlocks = 16;

// out = the 1-D transform `f` (N -> R values) applied to every column of the small matrix `in`
// [N][N], then to every row of that: [R][R]. Unrolled, so that the callers' loop over channels
// vectorizes (GCC leaves it scalar when these short loops stay loops).
template <int N, int R, typename T, typename Transform>
inline void TwoSided(const T (&in)[N][N], T (&out)[R][R], Transform f) {
  T half[R][N];
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) {
    T column[N], transformed[R];
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) column[i] = in[i][j];
    f(column, transformed);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) half[i][j] = transformed[i];
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) f(half[i], out[i]);
}

// For every k in [0, length): the N x N values d[i][j][k] transformed by TwoSided with `f`, written
// to the R x R matrices that follow one another `plane` elements apart from `out`, at out[.. + k].
// The gather of a tile's (or an output tile's gradient's) channels into the transformed planes.
template <int N, int R, typename T, typename Transform>
inline void TransformIntoPlanes(const T* const (&d)[N][N], int64_t length, int64_t plane, T* out, Transform f) {
#pragma GCC ivdep
  for (int64_t k = 0; k < length; ++k) {
    T tile[N][N], transformed[R][R];
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) tile[i][j] = d[i][j][k];
    }
    TwoSided(tile, transformed, f);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) out[(R * i + j) * plane + k] = transformed[i][j];
    }
  }
}

// B^T d B of `count` tiles from `first` on, into v [K*K][.][C] (K = M + 2), `plane` elements from
// one of the K*K matrices to the next.
template <int M, typename T>
void InputTransform(const Tiling& g, const T* x, const T* zeros, int64_t first, int64_t count, int64_t plane, T* v) {
  constexpr int K = M + 2;
  const int64_t C = g.C;
  for (int64_t t = 0; t < count; ++t) {
    int64_t n, row, col;
    g.Locate(first + t, &n, &row, &col);
    const T* d[K][K];
    for (int i = 0; i < K; ++i) {
      const int64_t r = row + i - g.pad_top;
      for (int j = 0; j < K; ++j) {
        const int64_t s = col + j - g.pad_left;
        d[i][j] = (r >= 0 && r < g.H && s >= 0 && s < g.W) ? x + ((n * g.H + r) * g.W + s) * C : zeros;
      }
    }
    TransformIntoPlanes<K, K>(d, C, plane, v + t * C, [](const T* a, T* b) { F<M>::Input(a, b); });
  }
}

// A^T p A of `count` tiles' products p [K*K][.][O] (`plane` elements from one of the K*K matrices to
// the next), written to y; outputs past the last full tile go to `discard`.
template <int M, typename T>
void OutputTransform(const Tiling& g, const T* p, int64_t first, int64_t count, int64_t plane, T* y, T* discard) {
  constexpr int K = M + 2;
  const int64_t O = g.O;
  for (int64_t t = 0; t < count; ++t) {
    int64_t n, row, col;
    g.Locate(first + t, &n, &row, &col);
    T* out[M][M];
    for (int a = 0; a < M; ++a) {
      for (int b = 0; b < M; ++b) {
        const bool inside = row + a < g.out_h && col + b < g.out_w;
        out[a][b] = inside ? y + ((n * g.out_h + row + a) * g.out_w + col + b) * O : discard;
      }
    }
    const T* in = p + t * O;
#pragma GCC ivdep
    for (int64_t o = 0; o < O; ++o) {
      T products[K][K], transformed[M][M];
#pragma GCC unroll 8
      for (int i = 0; i < K; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < K; ++j) products[i][j] = in[(K * i + j) * plane + o];
      }
      TwoSided(products, transformed, [](const T* a, T* b) { F<M>::Output(a, b); });
#pragma GCC unroll 8
      for (int a = 0; a < M; ++a) {
#pragma GCC unroll 8
        for (int b = 0; b < M; ++b) out[a][b][o] = transformed[a][b];
      }
    }
  }
}

// A dY A^T of `count` tiles of dy (zeros past the output's edge), into e [K*K][.][O] (`plane` apart):
// the adjoint of OutputTransform.
template <int M, typename T>
void OutputGradientTransform(const Tiling& g, const T* dy, const T* zeros, int64_t first, int64_t count,
                             int64_t plane, T* e) {
  constexpr int K = M + 2;
  const int64_t O = g.O;
  for (int64_t t = 0; t < count; ++t) {
    int64_t n, row, col;
    g.Locate(first + t, &n, &row, &col);
    const T* d[M][M];
    for (int a = 0; a < M; ++a) {
      for (int b = 0; b < M; ++b) {
        const bool inside = row + a < g.out_h && col + b < g.out_w;
        d[a][b] = inside ? dy + ((n * g.out_h + row + a) * g.out_w + col + b) * O : zeros;
      }
    }
    TransformIntoPlanes<M, K>(d, O, plane, e + t * O, [](const T* a, T* b) { F<M>::OutputAdj(a, b); });
  }
}

// For every k in [begin, end): the N x N values in[N i + j][k] transformed by TwoSided with `f`,
// written to out[R i + j][k]: matrices of (c, o) pairs, one plane (pointer) each.
template <int N, int R, typename T, typename Transform>
inline void TransformPlanes(const T* const* in_planes, T* const* out_planes, int64_t begin, int64_t end,
                            Transform f) {
  const T* in[N * N];
  T* out[R * R];
  std::copy(in_planes, in_planes + N * N, in);
  std::copy(out_planes, out_planes + R * R, out);
#pragma GCC ivdep
  for (int64_t k = begin; k < end; ++k) {
    T values[N][N], transformed[R][R];
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) values[i][j] = in[N * i + j][k];
    }
    TwoSided(values, transformed, f);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) out[R * i + j][k] = transformed[i][j];
    }
  }
}

// The `count` planes of `plane` elements each that follow one another from `base`.
template <typename T>
std::vector<T*> Planes(T* base, int count, int64_t plane) {
  std::vector<T*> planes(count);
  for (int k = 0; k < count; ++k) planes[k] = base + k * plane;
  return planes;
}

// G w G^T for the (c, o) pairs [begin, end) of C * O: the K*K planes u [C][O] from w [3][3][C][O].
template <int M, typename T>
void FilterTransform(const T* w, int64_t C, int64_t O, int64_t begin, int64_t end, T* const* u) {
  TransformPlanes<3, M + 2>(Planes(w, 9, C * O).data(), u, begin, end, [](const T* a, T* b) { F<M>::Filter(a, b); });
}

// G^T s G for the (c, o) pairs [begin, end): dw [3][3][C][O] from the K*K planes of summed products
// s [C][O] (the adjoint of FilterTransform).
template <int M, typename T>
void FilterGradientTransform(const T* const* s, int64_t C, int64_t O, int64_t begin, int64_t end, T* dw) {
  TransformPlanes<M + 2, 3>(s, Planes(dw, 9, C * O).data(), begin, end, [](const T* a, T* b) {
    F<M>::FilterAdj(a, b);
  });
}

// The attrs and x's shape -> the tiling; `outputs` is O (from w or dy).
tensorflow::Status MakeTiling(const char* op, const Tensor& x, const std::vector<int>& pads, int64_t outputs,
                              int tile, Tiling* g) {
  if (x.dims() != 4) return InvalidArgument(op, ": x must be [N, H, W, C], got ", x.shape().DebugString());
  g->N = x.dim_size(0), g->H = x.dim_size(1), g->W = x.dim_size(2), g->C = x.dim_size(3), g->O = outputs;
  g->pad_top = pads[0], g->pad_left = pads[2];
  g->out_h = g->H + pads[0] + pads[1] - 2, g->out_w = g->W + pads[2] + pads[3] - 2;
  if (g->out_h < 1 || g->out_w < 1) {
    return InvalidArgument(op, ": x ", x.shape().DebugString(), " padded by [", pads[0], ", ", pads[1], ", ",
                           pads[2], ", ", pads[3], "] is smaller than the 3x3 kernel");
  }
  g->tile = tile, g->rows = (g->out_h + tile - 1) / tile, g->cols = (g->out_w + tile - 1) / tile;
  return absl::OkStatus();
}

// `size` elements of scratch memory from TensorFlow's allocator, which keeps large blocks for reuse:
// from the C++ heap, blocks over 32 MiB (F(4x4)'s transformed filters with 512 channels) go back to
// the operating system after every call, and faulting their pages in again costs more than the
// products at 8x8 or 16x16.
template <typename T>
tensorflow::Status Scratch(OpKernelContext* ctx, int64_t size, Tensor* holder, T** data) {
  TF_RETURN_IF_ERROR(ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value, TensorShape({size}), holder));
  *data = holder->flat<T>().data();
  return absl::OkStatus();
}

// `count` planes of `size` elements, allocated one by one: F(4x4)'s 36 transformed filters (or
// filter-gradient sums) with 512 channels make 36 MiB, and where TensorFlow's allocator is the C++
// heap (oneDNN off) a block that size went back to the operating system at every call; 1 MiB planes
// stay in the heap for the next call.
template <typename T>
tensorflow::Status ScratchPlanes(OpKernelContext* ctx, int count, int64_t size, std::vector<Tensor>* holders,
                                 std::vector<T*>* planes) {
  holders->resize(count), planes->resize(count);
  for (int k = 0; k < count; ++k) TF_RETURN_IF_ERROR(Scratch(ctx, size, &(*holders)[k], &(*planes)[k]));
  return absl::OkStatus();
}

class WinogradOp : public OpKernel {
 public:
  explicit WinogradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pads", &pads_));
    OP_REQUIRES(ctx, pads_.size() == 4 && *std::min_element(pads_.begin(), pads_.end()) >= 0,
                InvalidArgument("pads must be 4 non-negative amounts [top, bottom, left, right]"));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tile", &tile_));
    OP_REQUIRES(ctx, tile_ == 2 || tile_ == 4,
                InvalidArgument("tile must be 2 or 4 (F(2x2, 3x3) or F(4x4, 3x3)), got ", tile_));
  }

 protected:
  std::vector<int> pads_;
  int tile_;
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
    OP_REQUIRES_OK(ctx, MakeTiling("WinogradConv2D", x, pads_, w.dim_size(3), tile_, &g));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({g.N, g.out_h, g.out_w, g.O}), &y));
    if (y->NumElements() == 0) return;
    if (tile_ == 2) {
      Run<2>(ctx, g, x, w, y);
    } else {
      Run<4>(ctx, g, x, w, y);
    }
  }

 private:
  template <int M>
  void Run(OpKernelContext* ctx, const Tiling& g, const Tensor& x, const Tensor& w, Tensor* y) {
    constexpr int KK = (M + 2) * (M + 2);  // products per tile
    const int64_t C = g.C, O = g.O;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    std::vector<T*> u;  // the transformed filters: KK planes [C][O]
    std::vector<Tensor> u_buffers;
    OP_REQUIRES_OK(ctx, ScratchPlanes(ctx, KK, C * O, &u_buffers, &u));
    std::vector<T> zeros(C, T(0));
    const T* wd = w.flat<T>().data();
    tensorflow::Shard(workers->num_threads, workers->workers, C * O, 4 * KK, [&](int64_t begin, int64_t end) {
      FilterTransform<M>(wd, C, O, begin, end, u.data());
    });
    const T* xd = x.flat<T>().data();
    T* yd = y->flat<T>().data();
    const int64_t tiles = g.count(), per_block = std::min(kTilesPerBlock, tiles);
    const int64_t blocks = (tiles + per_block - 1) / per_block;
    if (blocks < kMinBlocks) {
      // Too few blocks to share out (small images): every tile is transformed, then the products
      // are split across the threads, then every tile is transformed back.
      T *v = nullptr, *p = nullptr;
      Tensor v_buffer, p_buffer;
      OP_REQUIRES_OK(ctx, Scratch(ctx, KK * tiles * C, &v_buffer, &v));
      OP_REQUIRES_OK(ctx, Scratch(ctx, KK * tiles * O, &p_buffer, &p));
      tensorflow::Shard(workers->num_threads, workers->workers, tiles, 2 * KK * (C + O), [&](int64_t begin, int64_t end) {
        InputTransform<M>(g, xd, zeros.data(), begin, end - begin, tiles * C, v + begin * C);
      });
      tensorflow::Shard(workers->num_threads, workers->workers, KK, 2 * tiles * C * O, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
          MatrixMap<T>(p + k * tiles * O, tiles, O).noalias() =
              ConstMatrixMap<T>(v + k * tiles * C, tiles, C) * ConstMatrixMap<T>(u[k], C, O);
        }
      });
      tensorflow::Shard(workers->num_threads, workers->workers, tiles, 2 * KK * O, [&](int64_t begin, int64_t end) {
        std::vector<T> discard(O);
        OutputTransform<M>(g, p + begin * O, begin, end - begin, tiles * O, yd, discard.data());
      });
      return;
    }
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> v(KK * per_block * C), p(KK * per_block * O), discard(O);
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * per_block, count = std::min(per_block, tiles - first);
        InputTransform<M>(g, xd, zeros.data(), first, count, count * C, v.data());
        for (int k = 0; k < KK; ++k) {
          MatrixMap<T>(p.data() + k * count * O, count, O).noalias() =
              ConstMatrixMap<T>(v.data() + k * count * C, count, C) * ConstMatrixMap<T>(u[k], C, O);
        }
        OutputTransform<M>(g, p.data(), first, count, count * O, yd, discard.data());
      }
    };
    tensorflow::Shard(workers->num_threads, workers->workers, blocks, KK * 2 * per_block * (C + 1) * O, work);
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
    OP_REQUIRES_OK(ctx, MakeTiling("WinogradFilterGradient", x, pads_, dy.dim_size(3), tile_, &g));
    OP_REQUIRES(ctx, dy.dim_size(0) == g.N && dy.dim_size(1) == g.out_h && dy.dim_size(2) == g.out_w,
                InvalidArgument("WinogradFilterGradient: dy ", dy.shape().DebugString(), " does not match x ",
                                x.shape().DebugString(), "'s output [", g.N, ", ", g.out_h, ", ", g.out_w, ", O]"));
    Tensor* dw = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({3, 3, g.C, g.O}), &dw));
    if (dw->NumElements() == 0) return;
    if (tile_ == 2) {
      Run<2>(ctx, g, x, dy, dw);
    } else {
      Run<4>(ctx, g, x, dy, dw);
    }
  }

 private:
  template <int M>
  void Run(OpKernelContext* ctx, const Tiling& g, const Tensor& x, const Tensor& dy, Tensor* dw) {
    constexpr int KK = (M + 2) * (M + 2);
    const int64_t C = g.C, O = g.O;
    // The sum over tiles runs block after block in order, each block's products split across
    // threads: every sum is taken in the same order whatever the thread count.
    const int64_t tiles = g.count(), per_block = std::min(4 * kTilesPerBlock, tiles);
    std::vector<T*> s;  // the sums: KK planes [C][O], set by the first block, added to by the others
    std::vector<Tensor> s_buffers;
    OP_REQUIRES_OK(ctx, ScratchPlanes(ctx, KK, C * O, &s_buffers, &s));
    T *v = nullptr, *e = nullptr;
    Tensor v_buffer, e_buffer;
    OP_REQUIRES_OK(ctx, Scratch(ctx, KK * per_block * C, &v_buffer, &v));
    OP_REQUIRES_OK(ctx, Scratch(ctx, KK * per_block * O, &e_buffer, &e));
    std::vector<T> zeros_x(C, T(0)), zeros_dy(O, T(0));
    const T* xd = x.flat<T>().data();
    const T* dyd = dy.flat<T>().data();
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    for (int64_t first = 0; first < tiles; first += per_block) {
      const int64_t count = std::min(per_block, tiles - first);
      const int64_t cost = 3 * KK * (C + O);
      tensorflow::Shard(workers->num_threads, workers->workers, count, cost, [&](int64_t begin, int64_t end) {
        InputTransform<M>(g, xd, zeros_x.data(), first + begin, end - begin, count * C, v + begin * C);
        OutputGradientTransform<M>(g, dyd, zeros_dy.data(), first + begin, end - begin, count * O,
                                   e + begin * O);
      });
      tensorflow::Shard(workers->num_threads, workers->workers, KK, 2 * count * C * O, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
          MatrixMap<T> sum(s[k], C, O);
          const auto product = ConstMatrixMap<T>(v + k * count * C, count, C).transpose() *
                               ConstMatrixMap<T>(e + k * count * O, count, O);
          if (first == 0) {
            sum.noalias() = product;
          } else {
            sum.noalias() += product;
          }
        }
      });
    }
    T* dwd = dw->flat<T>().data();
    tensorflow::Shard(workers->num_threads, workers->workers, C * O, 4 * KK, [&](int64_t begin, int64_t end) {
      FilterGradientTransform<M>(s.data(), C, O, begin, end, dwd);
    });
  }
};

}  // namespace
}  // namespace sg2

// The CPU kernels of both ops for element type T (inside namespace sg2).
#define SG2_REGISTER_WINOGRAD(T)                                                                            \
  REGISTER_KERNEL_BUILDER(Name("Sg2WinogradConv2D").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          WinogradConv2DOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                                                   \
      Name("Sg2WinogradFilterGradient").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),               \
      WinogradFilterGradientOp<T>);

#endif  // SG2_WINOGRAD_CONV_2D_H_
