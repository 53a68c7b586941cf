// Device-side helpers shared by the kernels: the compute type (float for half), loads and
// stores, and the grid-stride launch / host emulation of a per-element functor.
#ifndef SG2_CUDA_COMMON_CUH_
#define SG2_CUDA_COMMON_CUH_

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels.h"

namespace sg2 {

template <typename T> struct ComputeType { using type = T; };
template <> struct ComputeType<half_t> { using type = float; };  // half is stored, float computed

template <typename T> __host__ __device__ inline typename ComputeType<T>::type Load(const T* p, int64_t i) {
  return p[i];
}
template <> __host__ __device__ inline float Load<half_t>(const half_t* p, int64_t i) {
  return __half2float(reinterpret_cast<const __half*>(p)[i]);
}
template <typename T> __host__ __device__ inline void Store(T* p, int64_t i, typename ComputeType<T>::type v) {
  p[i] = v;
}
template <> __host__ __device__ inline void Store<half_t>(half_t* p, int64_t i, float v) {
  reinterpret_cast<__half*>(p)[i] = __float2half_rn(v);
}

template <class Element>
__global__ void ElementwiseKernel(Element element, int64_t size) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < size; i += int64_t(gridDim.x) * blockDim.x) {
    element(i);
  }
}

// One thread per element (grid-stride), on `stream`; or the same functor on the host.
template <class Element>
const char* LaunchElementwise(const Element& element, int64_t size, void* stream) {
  if (size == 0) return nullptr;
  constexpr int kThreads = 256;
  const int64_t blocks = (size + kThreads - 1) / kThreads;
  ElementwiseKernel<<<static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), kThreads, 0,
                      static_cast<cudaStream_t>(stream)>>>(element, size);
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

template <class Element>
const char* EmulateElementwise(const Element& element, int64_t size) {
  for (int64_t i = 0; i < size; ++i) element(i);
  return nullptr;
}

}  // namespace sg2

#endif  // SG2_CUDA_COMMON_CUH_
