// ATen's fused backward kernels that the tch crate does not bind, for the kit's LibTorch backend:
// the gradients of a 2-D convolution (oneDNN on the CPU, cuDNN on NVIDIA GPUs) and of batch
// normalization in training mode, each in one call as PyTorch's autograd makes it.
//
// Tensors cross as `at::Tensor *`, the handle type of tch (`tch::Tensor::as_ptr`); results are
// new handles that the caller owns, or null where the mask did not ask for that gradient. Each
// function returns null on success or a message (freed with `clshost_aten_free`) when ATen
// throws: no C++ exception crosses into Rust.

#include <ATen/ATen.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <tuple>

namespace {

char *message(const std::exception &e) { return strdup(e.what()); }

void store(const std::tuple<at::Tensor, at::Tensor, at::Tensor> &grads,
           const std::array<bool, 3> &mask, at::Tensor **out) {
  out[0] = mask[0] ? new at::Tensor(std::get<0>(grads)) : nullptr;
  out[1] = mask[1] ? new at::Tensor(std::get<1>(grads)) : nullptr;
  out[2] = mask[2] ? new at::Tensor(std::get<2>(grads)) : nullptr;
}

} // namespace

extern "C" {

void clshost_aten_free(char *text) { free(text); }

char *clshost_aten_conv2d_backward(const at::Tensor *grad, const at::Tensor *input,
                                   const at::Tensor *weight, int has_bias,
                                   const int64_t *stride, const int64_t *padding,
                                   const int64_t *dilation, int64_t groups,
                                   const bool *mask, at::Tensor **out) {
  try {
    std::array<bool, 3> m = {mask[0], mask[1], mask[2] && has_bias};
    int64_t channels = weight->size(0);
    at::OptionalIntArrayRef bias_sizes = std::nullopt;
    if (has_bias) {
      bias_sizes = at::IntArrayRef(&channels, 1);
    }
    const int64_t zeros[2] = {0, 0};
    auto grads = at::convolution_backward(
        *grad, *input, *weight, bias_sizes, at::IntArrayRef(stride, 2),
        at::IntArrayRef(padding, 2), at::IntArrayRef(dilation, 2), false,
        at::IntArrayRef(zeros, 2), groups, m);
    store(grads, m, out);
    return nullptr;
  } catch (const std::exception &e) {
    return message(e);
  }
}

char *clshost_aten_batch_norm_backward(const at::Tensor *grad, const at::Tensor *input,
                                       const at::Tensor *weight, const at::Tensor *save_mean,
                                       const at::Tensor *save_invstd, double eps,
                                       const bool *mask, at::Tensor **out) {
  try {
    std::array<bool, 3> m = {mask[0], mask[1], mask[2]};
    auto grads = at::native_batch_norm_backward(
        *grad, *input, *weight, std::nullopt, std::nullopt, *save_mean, *save_invstd,
        true, eps, m);
    store(grads, m, out);
    return nullptr;
  } catch (const std::exception &e) {
    return message(e);
  }
}

} // extern "C"
