// Connected components of a boolean map (union-find over 4-neighbours).
#include "unet/data/components.h"

#include <ATen/ATen.h>

#include <numeric>
#include <unordered_map>
#include <vector>

namespace unet {
namespace {

int64_t find(std::vector<int64_t>& parent, int64_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

}  // namespace

at::Tensor connected_components(const at::Tensor& foreground_in) {
  const at::Tensor foreground = foreground_in.to(at::kBool).cpu().contiguous();
  const int64_t h = foreground.size(0), w = foreground.size(1);
  const bool* f = foreground.data_ptr<bool>();
  std::vector<int64_t> parent(static_cast<size_t>(h * w));
  std::iota(parent.begin(), parent.end(), 0);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      if (!f[i]) continue;
      if (x > 0 && f[i - 1]) parent[find(parent, i)] = find(parent, i - 1);
      if (y > 0 && f[i - w]) parent[find(parent, i)] = find(parent, i - w);
    }
  }
  at::Tensor labels = at::zeros({h, w}, at::kLong);
  int64_t* out = labels.data_ptr<int64_t>();
  std::unordered_map<int64_t, int64_t> number;
  for (int64_t i = 0; i < h * w; ++i) {
    if (!f[i]) continue;
    const int64_t root = find(parent, i);
    auto it = number.find(root);
    if (it == number.end()) it = number.emplace(root, static_cast<int64_t>(number.size()) + 1).first;
    out[i] = it->second;
  }
  return labels;
}

}  // namespace unet
