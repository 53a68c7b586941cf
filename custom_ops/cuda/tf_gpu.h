// What the TensorFlow op wrappers need to call the plain CUDA kernels: their declarations and the
// op's CUDA stream. Included by ../fused_bias_act.cc and ../upfirdn_2d.cc when built with
// -DSG2_WITH_CUDA; needs no CUDA header (the stream travels as void*).
#ifndef SG2_CUDA_TF_GPU_H_
#define SG2_CUDA_TF_GPU_H_

#include "kernels.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "xla/stream_executor/stream.h"

namespace sg2 {

// The CUstream TensorFlow runs this op on (nullptr: the default stream).
inline void* GpuStream(tensorflow::OpKernelContext* ctx) {
  tensorflow::DeviceContext* dc = ctx->op_device_context();
  return dc && dc->stream() ? dc->stream()->platform_specific_handle().stream : nullptr;
}

static_assert(sizeof(half_t) == 2, "half_t must be 16 bits, like Eigen::half and __half");

}  // namespace sg2

#endif  // SG2_CUDA_TF_GPU_H_
