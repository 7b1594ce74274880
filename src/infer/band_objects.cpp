// Objects across band seams: see unet/infer/band_objects.h.
#include "unet/infer/band_objects.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#include <limits>
#include <vector>

namespace unet {

BandObjects::BandObjects(int64_t height, int64_t band, int64_t margin, Extract extract, Emit emit, int64_t first_band,
                         int64_t last_band)
    : height_(height), band_(band), margin_(margin), bands_((height + band - 1) / band), first_band_(first_band),
      last_band_(last_band <= 0 ? (height + band - 1) / band : last_band), extract_(std::move(extract)),
      emit_(std::move(emit)) {
  TORCH_CHECK(band > 0 && margin >= 0 && margin <= band, "BandObjects: a margin of at most one band");
  TORCH_CHECK(first_band_ >= 0 && first_band_ < last_band_ && last_band_ <= bands_, "BandObjects: bands out of range");
  require_band_labels_fit(height, band);
  next_window_ = std::max<int64_t>(first_band_ - 1, 0);
  next_emit_ = first_band_;
}

void require_band_labels_fit(int64_t height, int64_t band) {
  // Provisional labels are kept as int32 (memory): band << 20 must stay below 2^31.
  if ((height + band - 1) / band > (int64_t{1} << (31 - kBandLabelBits)))
    throw Error("instance labels of images of more than " + std::to_string(band << (31 - kBandLabelBits)) +
                " rows are not supported");
}

int64_t BandObjects::window_start(int64_t b) const { return std::max<int64_t>(b * band_ - margin_, 0); }
int64_t BandObjects::window_end(int64_t b) const { return std::min(height_, (b + 1) * band_ + margin_); }
int64_t BandObjects::first_row() const { return window_start(std::max<int64_t>(first_band_ - 1, 0)); }
int64_t BandObjects::end_row() const { return window_end(std::min(last_band_, bands_ - 1)); }

void BandObjects::push(int64_t y, const at::Tensor& maps) {
  const int64_t from = std::max(y, first_row()), to = std::min(y + maps.size(1), end_row());
  if (to <= from) return;
  const at::Tensor rows = maps.narrow(1, from - y, to - from);
  if (rows_ == 0) maps_y_ = from;
  TORCH_CHECK(from == maps_y_ + rows_, "BandObjects::push: rows out of order");
  // Two buffers of a fixed size (a window and a push), the rows kept moving between them, so that
  // memory stays put band after band.
  if (!maps_.defined() || rows_ + rows.size(1) > maps_.size(1)) {
    const int64_t capacity = std::max(rows_ + rows.size(1), band_ + 2 * margin_ + rows.size(1));
    at::Tensor grown = at::empty({maps.size(0), capacity, maps.size(2)}, maps.options());
    if (rows_ > 0) grown.narrow(1, 0, rows_).copy_(maps_.narrow(1, 0, rows_));
    maps_ = grown;
    spare_ = at::empty_like(grown);
  }
  maps_.narrow(1, rows_, rows.size(1)).copy_(rows);
  rows_ += rows.size(1);
  const int64_t windows_end = std::min(bands_, last_band_ + 1);
  while (next_window_ < windows_end && maps_y_ + rows_ >= window_end(next_window_)) {
    windows_.push_back(cut(next_window_++));
    emit_ready();
    if (next_window_ < windows_end) {  // the next window's rows are all that is kept
      const int64_t drop = std::min(window_start(next_window_) - maps_y_, rows_);
      if (drop > 0) {
        spare_.narrow(1, 0, rows_ - drop).copy_(maps_.narrow(1, drop, rows_ - drop));
        std::swap(maps_, spare_);
        rows_ -= drop;
        maps_y_ += drop;
      }
    }
  }
}

BandObjects::Window BandObjects::cut(int64_t b) {
  const int64_t y0 = window_start(b), y1 = window_end(b);
  const at::Tensor labels = extract_(maps_.narrow(1, y0 - maps_y_, y1 - y0).contiguous()).to(at::kLong).contiguous();
  const int64_t h = labels.size(0), w = labels.size(1), n = labels.numel() ? labels.max().item<int64_t>() : 0;
  // Each object's top and bottom rows, then its owner: the band holding the row halfway between.
  std::vector<int64_t> top(static_cast<size_t>(n + 1), std::numeric_limits<int64_t>::max()), bottom(static_cast<size_t>(n + 1), -1);
  const int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t r = 0; r < h; ++r)
    for (int64_t x = 0; x < w; ++x) {
      const auto k = static_cast<size_t>(l[r * w + x]);
      if (k == 0) continue;
      top[k] = std::min(top[k], y0 + r);
      bottom[k] = y0 + r;
    }
  const int64_t core0 = b * band_, core1 = std::min(height_, (b + 1) * band_);
  at::Tensor lut = at::zeros({n + 1}, at::kInt);
  auto* map = lut.data_ptr<int32_t>();
  Window window;
  window.band = b;
  window.y0 = y0;
  for (int64_t k = 1; k <= n; ++k) {
    const int64_t centre = (top[static_cast<size_t>(k)] + bottom[static_cast<size_t>(k)]) / 2;
    if (bottom[static_cast<size_t>(k)] < 0 || centre < core0 || centre >= core1) continue;
    if (++window.count >= (int64_t{1} << kBandLabelBits))
      throw Error("more than " + std::to_string((int64_t{1} << kBandLabelBits) - 1) + " objects in rows " +
                  std::to_string(core0) + "-" + std::to_string(core1) + ": instance labels cannot name them");
    map[k] = static_cast<int32_t>(provisional_label(b, window.count));
  }
  window.owned = lut.index_select(0, labels.reshape({-1})).view({h, w});
  return window;
}

void BandObjects::emit_ready() {
  while (next_emit_ < last_band_) {
    const int64_t needed = std::min(next_emit_ + 1, bands_ - 1);
    if (next_window_ <= needed) return;
    const int64_t core0 = next_emit_ * band_, core1 = std::min(height_, (next_emit_ + 1) * band_);
    at::Tensor out;
    int64_t owned = 0;
    // Its own objects first, then those of the band above, then below.
    for (const int64_t b : {next_emit_, next_emit_ - 1, next_emit_ + 1}) {
      for (const Window& w : windows_) {
        if (w.band != b) continue;
        const int64_t from = std::max(core0, w.y0), to = std::min(core1, w.y0 + w.owned.size(0));
        if (!out.defined()) out = at::zeros({core1 - core0, w.owned.size(1)}, at::kLong);
        if (b == next_emit_) owned = w.count;
        if (to <= from) continue;
        at::Tensor part = out.narrow(0, from - core0, to - from);
        part.copy_(at::where(part.eq(0), w.owned.narrow(0, from - w.y0, to - from).to(at::kLong), part));
      }
    }
    emit_(next_emit_, out, owned);
    ++next_emit_;
    while (!windows_.empty() && windows_.front().band < next_emit_ - 1) windows_.pop_front();
  }
}

at::Tensor final_labels(const at::Tensor& labels, const std::vector<int64_t>& first_label) {
  const at::Tensor l = labels.to(at::kLong);
  const at::Tensor band = l.bitwise_right_shift(kBandLabelBits).clamp(0, static_cast<int64_t>(first_label.size()) - 1);
  const at::Tensor k = l.bitwise_and((int64_t{1} << kBandLabelBits) - 1);
  const at::Tensor first = at::tensor(first_label, at::kLong).index_select(0, band.reshape({-1})).view_as(l);
  return at::where(l.gt(0), first + k - 1, at::zeros_like(l));
}

}  // namespace unet
