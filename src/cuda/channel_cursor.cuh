// Channel of element i in a grid-stride loop without a 64-bit division per element (host and device).
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define UNET_HOST_DEVICE __host__ __device__
#else
#define UNET_HOST_DEVICE
#endif

namespace unet::cuda {

/// Walks i = start, start + stride, ... and keeps channel = (i / inner) % channels current with
/// additions and compares only: the divisions happen once, in the constructor.
struct ChannelCursor {
  int64_t inner, channels;
  int64_t offset;   // i % inner
  int64_t channel;  // (i / inner) % channels
  int64_t step_offset, step_channel;  // stride split the same way

  UNET_HOST_DEVICE ChannelCursor(int64_t start, int64_t stride, int64_t inner_, int64_t channels_)
      : inner(inner_),
        channels(channels_),
        offset(start % inner_),
        channel((start / inner_) % channels_),
        step_offset(stride % inner_),
        step_channel((stride / inner_) % channels_) {}

  UNET_HOST_DEVICE void advance() {
    offset += step_offset;
    int64_t carry = 0;
    if (offset >= inner) {
      offset -= inner;
      carry = 1;
    }
    channel += step_channel + carry;
    if (channel >= channels) channel -= channels;
  }
};

}  // namespace unet::cuda
