// Per-channel sums computed alongside a pass over NHWC rows (a row: one pixel's C channels), on the
// CPU thread pool and reproducible: the rows are cut into fixed blocks that never straddle two
// samples, each block sums into its own float64 partials, and the partials are added in block
// order. The result does not depend on the thread count or the scheduling. Used by the gradient
// kernels that return a tensor and the sums of a product over rows in one pass
// (fused_bias_act.cc, scale_channels.cc).
#ifndef SG2_CHANNEL_SUMS_H_
#define SG2_CHANNEL_SUMS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace sg2 {

constexpr int64_t kRowsPerBlock = 256;

// Calls block(begin_row, end_row, acc) for every block of rows, acc pointing at that block's C
// zeroed float64 partials, and returns the partials: one run of C per block, the blocks of sample n
// (rows [n * rows_per_sample, (n + 1) * rows_per_sample)) consecutive, `blocks_per_sample` of them.
template <typename Block>
std::vector<double> BlockPartials(tensorflow::OpKernelContext* ctx, int64_t samples, int64_t rows_per_sample,
                                  int64_t C, int64_t cost_per_row, int64_t* blocks_per_sample, Block block) {
  const int64_t per_sample = std::max<int64_t>(1, (rows_per_sample + kRowsPerBlock - 1) / kRowsPerBlock);
  *blocks_per_sample = per_sample;
  std::vector<double> partials(static_cast<size_t>(samples * per_sample * C), 0.0);
  auto run = [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const int64_t n = k / per_sample, j = k % per_sample;
      const int64_t begin = n * rows_per_sample + j * kRowsPerBlock;
      const int64_t end = n * rows_per_sample + std::min(rows_per_sample, (j + 1) * kRowsPerBlock);
      block(begin, end, partials.data() + k * C);
    }
  };
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, samples * per_sample, cost_per_row * kRowsPerBlock,
                    run);
  return partials;
}

// A block's partials may hold several sums side by side: `width` doubles a block (BlockPartials'
// C), of which the sum below reads the C at `offset`.

// out[n * C + c] = sum over sample n's blocks of their partials, in block order.
template <typename T>
void SumPerSample(const std::vector<double>& partials, int64_t samples, int64_t blocks_per_sample, int64_t C,
                  T* out, int64_t width = -1, int64_t offset = 0) {
  if (width < 0) width = C;
  for (int64_t n = 0; n < samples; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      double s = 0.0;
      for (int64_t j = 0; j < blocks_per_sample; ++j) s += partials[(n * blocks_per_sample + j) * width + offset + c];
      out[n * C + c] = static_cast<T>(s);
    }
  }
}

// out[c] = sum over all blocks of their partials, in block order.
template <typename T>
void SumAll(const std::vector<double>& partials, int64_t blocks, int64_t C, T* out, int64_t width = -1,
            int64_t offset = 0) {
  if (width < 0) width = C;
  for (int64_t c = 0; c < C; ++c) {
    double s = 0.0;
    for (int64_t k = 0; k < blocks; ++k) s += partials[k * width + offset + c];
    out[c] = static_cast<T>(s);
  }
}

}  // namespace sg2

#endif  // SG2_CHANNEL_SUMS_H_
