// The CUDA kernels as plain functions: no TensorFlow here. The TF op wrappers
// (../fused_bias_act.cc, ../upfirdn_2d.cc, built with -DSG2_WITH_CUDA) and the TensorFlow-free
// harness (harness.cu) both call these. Pointers are device pointers for Launch*, host pointers
// for Emulate*, which runs the very same per-element device code on the CPU, one element at a
// time (slow; for checking the kernels' indexing and math where no GPU is present).
// Each function returns nullptr on success, else a static error string.
#ifndef SG2_CUDA_KERNELS_H_
#define SG2_CUDA_KERNELS_H_

#include <cstdint>

namespace sg2 {

// IEEE binary16, bit-compatible with CUDA's __half and TensorFlow's Eigen::half.
struct half_t { uint16_t bits; };

template <typename T>
struct FusedBiasActArgs {
  const T* x;         // [rows * channels]
  const T* b;         // [channels] or nullptr (no bias)
  const T* dy;        // same size as x, for order >= 1; else nullptr
  T* out;
  int64_t size;       // elements of x
  int64_t channels;   // the bias runs along the last axis
  int act;            // sg2::Act (bias_act_math.h)
  int order;          // 0: clamp(act(x + b) * gain); k >= 1: dy * gain * act^(k)(x + b) * clamp mask
  float alpha;        // lrelu slope, held in float32 as TensorFlow does
  double gain;
  double clamp;       // < 0: no clamp
};

template <typename T>
struct UpFirDn2DArgs {
  const T* x;         // [n, in_h, in_w, c]
  const T* f;         // [kh, kw], applied as a true convolution
  T* y;               // [n, out_h, out_w, c]
  int64_t n, in_h, in_w, c, out_h, out_w;
  int kh, kw, upx, upy, downx, downy, padx0, pady0;
};

template <typename T> const char* LaunchFusedBiasAct(const FusedBiasActArgs<T>& args, void* stream);
template <typename T> const char* EmulateFusedBiasAct(const FusedBiasActArgs<T>& args);
template <typename T> const char* LaunchUpFirDn2D(const UpFirDn2DArgs<T>& args, void* stream);
template <typename T> const char* EmulateUpFirDn2D(const UpFirDn2DArgs<T>& args);
// Which code path a geometry takes: "up2_k4", "down2_k4", "k4" or "generic".
template <typename T> const char* UpFirDn2DPath(const UpFirDn2DArgs<T>& args);

}  // namespace sg2

#endif  // SG2_CUDA_KERNELS_H_
