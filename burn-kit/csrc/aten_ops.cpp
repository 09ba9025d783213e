// ATen's fused kernels that the tch crate does not bind, for the kit's LibTorch backend: the
// gradients of a 2-D convolution (oneDNN on the CPU, cuDNN on NVIDIA GPUs) and of batch
// normalization in training mode, each in one call as PyTorch's autograd makes it; and the
// multi-tensor SGD and AdamW steps of `torch.optim`'s `fused=True`, which update parameters and
// optimizer state in place in one pass over each tensor.
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
#include <vector>

namespace {

char *message(const std::exception &e) { return strdup(e.what()); }

void store(const std::tuple<at::Tensor, at::Tensor, at::Tensor> &grads,
           const std::array<bool, 3> &mask, at::Tensor **out) {
  out[0] = mask[0] ? new at::Tensor(std::get<0>(grads)) : nullptr;
  out[1] = mask[1] ? new at::Tensor(std::get<1>(grads)) : nullptr;
  out[2] = mask[2] ? new at::Tensor(std::get<2>(grads)) : nullptr;
}

// The `count` tensors behind `handles`, as ATen's tensor lists take them (handles to the same
// tensors: in-place kernels update the caller's).
std::vector<at::Tensor> list(const at::Tensor *const *handles, size_t count) {
  std::vector<at::Tensor> tensors;
  tensors.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    tensors.push_back(*handles[i]);
  }
  return tensors;
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

// `torch.optim.SGD(fused=True)`'s step over `count` parameters: in place on the parameters and,
// with a momentum, on their momentum buffers (which `first_step` fills with the gradients).
char *clshost_aten_fused_sgd(const at::Tensor *const *params, const at::Tensor *const *grads,
                             const at::Tensor *const *buffers, size_t count, double weight_decay,
                             double momentum, double lr, bool nesterov, bool first_step) {
  try {
    auto momentum_buffers = momentum != 0.0 ? list(buffers, count) : std::vector<at::Tensor>();
    at::_fused_sgd_(list(params, count), list(grads, count), momentum_buffers, weight_decay,
                    momentum, lr, 0.0, nesterov, false, first_step);
    return nullptr;
  } catch (const std::exception &e) {
    return message(e);
  }
}

// `torch.optim.AdamW(fused=True)`'s step over `count` parameters: in place on the parameters and
// their moments; `steps` holds each parameter's step count after this step (float32 scalars).
char *clshost_aten_fused_adamw(const at::Tensor *const *params, const at::Tensor *const *grads,
                               const at::Tensor *const *exp_avgs,
                               const at::Tensor *const *exp_avg_sqs,
                               const at::Tensor *const *steps, size_t count, double lr,
                               double beta1, double beta2, double weight_decay, double eps) {
  try {
    at::_fused_adamw_(list(params, count), list(grads, count), list(exp_avgs, count),
                      list(exp_avg_sqs, count), {}, list(steps, count), lr, beta1, beta2,
                      weight_decay, eps, false, false);
    return nullptr;
  } catch (const std::exception &e) {
    return message(e);
  }
}

} // extern "C"
