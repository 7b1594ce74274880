// Connected regions of a label map (union-find over 4- or 8-neighbours of equal value).
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

at::Tensor connected_components(const at::Tensor& foreground) {
  return connected_regions(foreground.to(at::kBool).to(at::kLong));
}

at::Tensor connected_regions(const at::Tensor& values_in, bool diagonal) {
  const at::Tensor values = values_in.to(at::kLong).cpu().contiguous();
  const int64_t h = values.size(0), w = values.size(1);
  const int64_t* v = values.data_ptr<int64_t>();
  std::vector<int64_t> parent(static_cast<size_t>(h * w));
  std::iota(parent.begin(), parent.end(), 0);
  const auto join = [&](int64_t a, int64_t b) {
    if (v[a] == v[b]) parent[find(parent, a)] = find(parent, b);
  };
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      if (v[i] == 0) continue;
      if (x > 0) join(i, i - 1);
      if (y > 0) join(i, i - w);
      if (diagonal && y > 0 && x > 0) join(i, i - w - 1);
      if (diagonal && y > 0 && x + 1 < w) join(i, i - w + 1);
    }
  }
  at::Tensor labels = at::zeros({h, w}, at::kLong);
  int64_t* out = labels.data_ptr<int64_t>();
  std::unordered_map<int64_t, int64_t> number;
  for (int64_t i = 0; i < h * w; ++i) {
    if (v[i] == 0) continue;
    const int64_t root = find(parent, i);
    auto it = number.find(root);
    if (it == number.end()) it = number.emplace(root, static_cast<int64_t>(number.size()) + 1).first;
    out[i] = it->second;
  }
  return labels;
}

}  // namespace unet
