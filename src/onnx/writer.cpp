// The U-Net as an ONNX graph: Conv+Relu pairs, MaxPool, ConvTranspose+Relu, a centre crop of the
// skip connection computed from the tensors' shapes (so that height and width stay symbolic),
// Concat, the 1x1 head and a Softmax over the classes. Mirrors UNetImpl::forward op by op; the
// tests run the file in ONNX Runtime and OpenVINO against the native model.
//
// The int8 graph is the same walk in QDQ form, the form ONNX Runtime's and OpenVINO's graph
// optimizers turn into int8 kernels (QLinearConv, QLinearConcat, u8 MaxPool, Slice and
// DepthToSpace); the up-sampling is written in the int8 engine's sub-pixel form (a convolution
// and DepthToSpace), since ONNX Runtime's CPU provider has no int8 ConvTranspose. Every activation
// passes QuantizeLinear (u8) and DequantizeLinear, the weights are int8 initializers dequantized
// per output channel, the biases int32 at scale x_scale * w_scale. No Relu: quantizing to u8 with
// zero point 0 clamps negatives as the ReLU does. It is the arithmetic of unet's int8 engine
// (src/infer/int8_engine.cpp), whose scales and weights it is given.
#include "unet/onnx/writer.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>

namespace unet::onnx_export {
namespace {

using onnx::AttributeProto;
using onnx::GraphProto;
using onnx::NodeProto;
using onnx::TensorProto;

/// Appends nodes to a graph, naming their outputs uniquely. With a quantization, convolutions,
/// pooling, crops and concatenations are written in QDQ form and every activation's (scale,
/// zero point) is remembered by its tensor's name.
class GraphBuilder {
 public:
  GraphBuilder(GraphProto* graph, const Network& network) : graph_(graph) {
    for (const Weight& w : network.weights) weights_[w.name] = &w;
    if (network.int8) {
      int8_ = &*network.int8;
      for (const QuantizedConv& c : int8_->convs) convs_[c.name] = &c;
    }
  }

  bool int8() const { return int8_ != nullptr; }

  /// The network's float weight `name`, checked to have `shape`.
  const Weight& find(const std::string& name, const std::vector<int64_t>& shape) const {
    const auto it = weights_.find(name);
    if (it == weights_.end()) throw std::runtime_error("the network has no weight " + name);
    const Weight& w = *it->second;
    if (w.shape != shape) throw std::runtime_error("weight " + name + " has an unexpected shape");
    if (static_cast<int64_t>(w.values.size()) != count(shape)) throw std::runtime_error("weight " + name + " has the wrong number of values");
    return w;
  }

  /// Adds the network's weight `name` as an initializer of `shape`; returns its name.
  std::string weight(const std::string& name, const std::vector<int64_t>& shape) {
    return tensor(name, TensorProto::FLOAT, shape, find(name, shape).values);
  }

  /// Adds an int64 constant initializer; returns its name.
  std::string constant(const std::string& name, const std::vector<int64_t>& values) {
    TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return name;
  }

  /// Adds a node of `op` on `inputs`; returns the name of its (single) output.
  NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output = "") {
    NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(graph_->node_size()));
    for (const std::string& i : inputs) n->add_input(i);
    n->add_output(output.empty() ? n->name() : output);
    return n;
  }

  static void ints(NodeProto* n, const std::string& name, const std::vector<int64_t>& values) {
    AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }

  static void integer(NodeProto* n, const std::string& name, int64_t value) {
    AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(AttributeProto::INT);
    a->set_i(value);
  }

  /// The image as the network's first activation: itself, or quantized to u8 at the input's
  /// scale and zero point and dequantized.
  std::string input(const std::string& image) {
    if (!int8_) return image;
    if (!(int8_->input_scale > 0.0f) || int8_->input_zero_point < 0 || int8_->input_zero_point > 255)
      throw std::runtime_error("the int8 input quantization is not a positive scale with a zero point in [0, 255]");
    return qdq(image, int8_->input_scale, int8_->input_zero_point);
  }

  /// relu(conv3x3(x) + b) of the module `prefix` (prefix.weight [out, in, 3, 3], prefix.bias [out]).
  std::string conv_relu(const std::string& x, const std::string& prefix, int64_t in, int64_t out, int64_t pad) {
    const auto [w, b] = conv_inputs(x, prefix, {out, in, 3, 3});
    NodeProto* c = node("Conv", {x, w, b});
    ints(c, "kernel_shape", {3, 3});
    ints(c, "pads", {pad, pad, pad, pad});
    ints(c, "strides", {1, 1});
    return relu(c->output(0), prefix);
  }

  /// relu(conv_transpose(x) + b), stride 2, of the module `prefix` (weight [in, out, k, k]). In int8
  /// in the sub-pixel form the int8 engine runs (runtimes have int8 convolutions, ONNX Runtime no
  /// int8 ConvTranspose): a stride-1 convolution (kernel 1 for k = 2; kernel 2 with one zero row
  /// and column at the bottom and right for k = 3) writing the four output phases of every
  /// channel, requantized, then DepthToSpace (CRD: channel 4o + 2a + b -> pixel (2i + a, 2j + b)).
  std::string up_relu(const std::string& x, const std::string& prefix, int64_t in, int64_t out, int64_t k) {
    if (int8_) {
      find(prefix + ".weight", {in, out, k, k});
      find(prefix + ".bias", {out});
      const int64_t taps = k == 2 ? 1 : 2;
      const auto [w, b] = int8_inputs(x, prefix, {4 * out, in, taps, taps}, 4);
      NodeProto* c = node("Conv", {x, w, b});
      ints(c, "kernel_shape", {taps, taps});
      ints(c, "pads", k == 3 ? std::vector<int64_t>{0, 0, 1, 1} : std::vector<int64_t>{0, 0, 0, 0});
      ints(c, "strides", {1, 1});
      const std::string phases = relu(c->output(0), prefix);
      NodeProto* shuffle = node("DepthToSpace", {phases});
      integer(shuffle, "blocksize", 2);
      AttributeProto* mode = shuffle->add_attribute();
      mode->set_name("mode");
      mode->set_type(AttributeProto::STRING);
      mode->set_s("CRD");
      return same_quantization(phases, shuffle->output(0));
    }
    NodeProto* up = node("ConvTranspose", {x, weight(prefix + ".weight", {in, out, k, k}), weight(prefix + ".bias", {out})});
    ints(up, "kernel_shape", {k, k});
    ints(up, "strides", {2, 2});
    ints(up, "pads", k == 3 ? std::vector<int64_t>{1, 1, 1, 1} : std::vector<int64_t>{0, 0, 0, 0});
    if (k == 3) ints(up, "output_padding", {1, 1});
    return relu(up->output(0), prefix);
  }

  /// The 1x1 head's logits (float32 in both forms: int8 inputs and weights, float bias), named `output`.
  void head(const std::string& x, int64_t in, int64_t classes, const std::string& output) {
    const std::vector<int64_t> shape = {classes, in, 1, 1};
    if (int8_) find("head.weight", shape);
    const std::string w = int8_ ? int8_weight("head", shape, quantized("head").scales) : weight("head.weight", shape);
    node("Conv", {x, w, weight("head.bias", {classes})}, output);
  }

  /// `op`'s output on x (MaxPool, Slice) requantized at x's own quantization: exact, and what lets
  /// a runtime keep it in u8.
  std::string same_quantization(const std::string& x, const std::string& y) {
    if (!int8_) return y;
    const auto [scale, zero_point] = quantization_.at(x);
    return qdq(y, scale, zero_point);
  }

  /// Concatenation of the channels of `up` and `skip`; in int8 both share one scale, which the result keeps.
  std::string concat(const std::string& up, const std::string& skip, const std::string& up_name, const std::string& skip_name) {
    NodeProto* cat = node("Concat", {up, skip});
    integer(cat, "axis", 1);
    if (!int8_) return cat->output(0);
    if (quantization_.at(up) != quantization_.at(skip))
      throw std::runtime_error("the int8 scales of " + up_name + " and " + skip_name + " differ: they are concatenated");
    return same_quantization(up, cat->output(0));
  }

 private:
  GraphProto* graph_;
  std::map<std::string, const Weight*> weights_;
  const Quantization* int8_ = nullptr;
  std::map<std::string, const QuantizedConv*> convs_;
  std::map<std::string, std::pair<float, int64_t>> quantization_;  // by activation: scale, zero point

  static int64_t count(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }

  /// Adds an initializer of `type` (the element type of `values`) and `shape`; returns `name`.
  template <class T>
  std::string tensor(const std::string& name, int type, const std::vector<int64_t>& shape, const std::vector<T>& values) {
    TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : shape) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
    return name;
  }

  /// x -> QuantizeLinear (u8) -> DequantizeLinear at (scale, zero_point); returns the float output.
  std::string qdq(const std::string& x, float scale, int64_t zero_point) {
    const std::string tag = std::to_string(graph_->node_size());
    const std::string s = tensor("scale_" + tag, TensorProto::FLOAT, {}, std::vector<float>{scale});
    const std::string z = tensor("zero_point_" + tag, TensorProto::UINT8, {}, std::vector<uint8_t>{static_cast<uint8_t>(zero_point)});
    const std::string q = node("QuantizeLinear", {x, s, z})->output(0);
    const std::string y = node("DequantizeLinear", {q, s, z})->output(0);
    quantization_[y] = {scale, zero_point};
    return y;
  }

  /// The quantization of module `name`.
  const QuantizedConv& quantized(const std::string& name) const {
    const auto it = convs_.find(name);
    if (it == convs_.end()) throw std::runtime_error("the int8 quantization has no layer " + name);
    return *it->second;
  }

  /// The int8 weight of module `prefix` ([shape], one of `scales` per output channel: axis 0),
  /// dequantized; returns the float output.
  std::string int8_weight(const std::string& prefix, const std::vector<int64_t>& shape, const std::vector<float>& scales) {
    const QuantizedConv& q = quantized(prefix);
    const int64_t channels = shape[0];
    if (static_cast<int64_t>(q.values.size()) != count(shape) || static_cast<int64_t>(q.scales.size()) != channels)
      throw std::runtime_error("the int8 weights of " + prefix + " do not fit its shape");
    const std::string values = tensor(prefix + ".weight_int8", TensorProto::INT8, shape, q.values);
    const std::string s = tensor(prefix + ".weight_scale", TensorProto::FLOAT, {channels}, scales);
    const std::string zeros = tensor(prefix + ".weight_zero_point", TensorProto::INT8, {channels},
                                     std::vector<int8_t>(static_cast<size_t>(channels), 0));
    NodeProto* dq = node("DequantizeLinear", {values, s, zeros});
    integer(dq, "axis", 0);
    return dq->output(0);
  }

  /// The bias of `prefix` for `out` channels, each of the float bias's `repeat` times (4 for the
  /// sub-pixel form's phases): its value per channel.
  std::vector<double> bias(const std::string& prefix, int64_t out, int64_t repeat) const {
    const Weight& b = find(prefix + ".bias", {out / repeat});
    std::vector<double> values(static_cast<size_t>(out));
    for (size_t o = 0; o < values.size(); ++o) values[o] = b.values[o / static_cast<size_t>(repeat)];
    return values;
  }

  /// The weight scales of `prefix` on an input of scale x_scale: the quantization's, except that a
  /// channel whose int8 weights are all 0 (any scale gives 0) takes one at which its bias fits in int32.
  std::vector<float> weight_scales(const std::string& prefix, const std::vector<double>& biases, float x_scale) const {
    const QuantizedConv& q = quantized(prefix);
    std::vector<float> scales = q.scales;
    const size_t per = scales.empty() ? 0 : q.values.size() / scales.size();
    for (size_t o = 0; o < scales.size() && o < biases.size(); ++o) {
      bool zero = true;
      for (size_t i = o * per; i < (o + 1) * per && zero; ++i) zero = q.values[i] == 0;
      if (zero) scales[o] = std::max(scales[o], static_cast<float>(std::abs(biases[o]) / (x_scale * double{1 << 30})));
    }
    return scales;
  }

  /// `biases` as int32 at scale x_scale * w_scales[o] (what an int8 kernel adds to its
  /// accumulator), dequantized; returns the float output.
  std::string int32_bias(const std::string& prefix, const std::vector<double>& biases, float x_scale,
                         const std::vector<float>& w_scales) {
    const int64_t out = static_cast<int64_t>(biases.size());
    std::vector<float> scales(biases.size());
    std::vector<int32_t> values(biases.size());
    const double limit = std::numeric_limits<int32_t>::max();
    for (size_t o = 0; o < scales.size(); ++o) {
      scales[o] = x_scale * w_scales.at(o);
      values[o] = static_cast<int32_t>(std::clamp(std::nearbyint(biases[o] / static_cast<double>(scales[o])), -limit, limit));
    }
    const std::string v = tensor(prefix + ".bias_int32", TensorProto::INT32, {out}, values);
    const std::string s = tensor(prefix + ".bias_scale", TensorProto::FLOAT, {out}, scales);
    const std::string z = tensor(prefix + ".bias_zero_point", TensorProto::INT32, {out}, std::vector<int32_t>(scales.size(), 0));
    NodeProto* dq = node("DequantizeLinear", {v, s, z});
    integer(dq, "axis", 0);
    return dq->output(0);
  }

  /// The int8 weight and int32 bias inputs of the convolution `prefix` on x (int8 weight `shape`,
  /// output channels first; each float bias `repeat` times).
  std::pair<std::string, std::string> int8_inputs(const std::string& x, const std::string& prefix,
                                                  const std::vector<int64_t>& shape, int64_t repeat) {
    const float x_scale = quantization_.at(x).first;
    const std::vector<double> biases = bias(prefix, shape[0], repeat);
    const std::vector<float> scales = weight_scales(prefix, biases, x_scale);
    const std::string w = int8_weight(prefix, shape, scales);
    return {w, int32_bias(prefix, biases, x_scale, scales)};
  }

  /// The weight and bias inputs of the convolution `prefix` on x (weight `shape` [out, in, k, k]).
  std::pair<std::string, std::string> conv_inputs(const std::string& x, const std::string& prefix,
                                                  const std::vector<int64_t>& shape) {
    if (!int8_) return {weight(prefix + ".weight", shape), weight(prefix + ".bias", {shape[0]})};
    find(prefix + ".weight", shape);
    return int8_inputs(x, prefix, shape, 1);
  }

  /// The ReLU of a convolution's output: a Relu node, or in int8 the u8 quantization at the layer's
  /// output scale with zero point 0 (which clamps negatives to 0 as the ReLU does).
  std::string relu(const std::string& y, const std::string& prefix) {
    if (!int8_) return node("Relu", {y})->output(0);
    const float scale = quantized(prefix).output_scale;
    if (!(scale > 0.0f) || !std::isfinite(scale)) throw std::runtime_error("the int8 output scale of " + prefix + " is not positive");
    return qdq(y, scale, 0);
  }
};

void tensor_value(onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::string>& dims,
                  int64_t channels) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(TensorProto::FLOAT);
  auto* shape = t->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* d = shape->add_dim();
    if (i == 1) {
      d->set_dim_value(channels);
    } else {
      d->set_dim_param(dims[i]);
    }
  }
}

/// The channels at each level: the first level's convolutions have `filters` = the shape of
/// down.0.conv1.weight's first dimension; each level doubles them.
int64_t first_filters(const Network& n) {
  for (const Weight& w : n.weights)
    if (w.name == "down.0.conv1.weight" && !w.shape.empty()) return w.shape[0];
  throw std::runtime_error("the network has no weight down.0.conv1.weight");
}

void add_graph(GraphProto* g, const Network& net, Outputs outputs) {
  if (net.depth < 1 || net.in_channels < 1 || net.classes < 2) throw std::runtime_error("not a U-Net architecture");
  if (net.up_kernel != 2 && net.up_kernel != 3) throw std::runtime_error("up-sampling kernel " + std::to_string(net.up_kernel) + " cannot be exported (2 or 3)");
  GraphBuilder b(g, net);
  const int64_t pad = net.same_padding ? 1 : 0;
  const int64_t f = first_filters(net);
  tensor_value(g->add_input(), "image", {"N", "C", "H", "W"}, net.in_channels);

  std::string x = b.input("image");
  int64_t channels = net.in_channels;
  std::vector<std::string> skips;
  for (int64_t level = 0; level < net.depth; ++level) {
    const std::string p = "down." + std::to_string(level);
    const int64_t out = f << level;
    x = b.conv_relu(x, p + ".conv1", channels, out, pad);
    x = b.conv_relu(x, p + ".conv2", out, out, pad);
    channels = out;
    skips.push_back(x);
    NodeProto* pool = b.node("MaxPool", {x});
    GraphBuilder::ints(pool, "kernel_shape", {2, 2});
    GraphBuilder::ints(pool, "strides", {2, 2});
    x = b.same_quantization(x, pool->output(0));
  }
  const int64_t bottom = f << net.depth;
  x = b.conv_relu(x, "bottleneck.conv1", channels, bottom, pad);
  x = b.conv_relu(x, "bottleneck.conv2", bottom, bottom, pad);
  channels = bottom;

  const std::string two = b.constant("const_two", {2, 2});
  const std::string axes = b.constant("const_axes_hw", {2, 3});
  for (int64_t i = 0; i < net.depth; ++i) {
    const int64_t level = net.depth - 1 - i;
    const int64_t out = f << level;
    const std::string u = "up_sample." + std::to_string(i);
    x = b.up_relu(x, u, channels, out, net.up_kernel);
    std::string skip = skips[static_cast<size_t>(level)];
    if (!net.same_padding) {
      // The centre crop of the skip connection to x's size: start = (skip - x) / 2 per axis.
      NodeProto* sx = b.node("Shape", {x});
      GraphBuilder::integer(sx, "start", 2);
      GraphBuilder::integer(sx, "end", 4);
      NodeProto* ss = b.node("Shape", {skip});
      GraphBuilder::integer(ss, "start", 2);
      GraphBuilder::integer(ss, "end", 4);
      const std::string diff = b.node("Sub", {ss->output(0), sx->output(0)})->output(0);
      const std::string start = b.node("Div", {diff, two})->output(0);
      const std::string end = b.node("Add", {start, sx->output(0)})->output(0);
      skip = b.same_quantization(skip, b.node("Slice", {skip, start, end, axes})->output(0));
    }
    x = b.concat(x, skip, u, "down." + std::to_string(level) + ".conv2");
    const std::string p = "up." + std::to_string(i);
    x = b.conv_relu(x, p + ".conv1", 2 * out, out, pad);
    x = b.conv_relu(x, p + ".conv2", out, out, pad);
    channels = out;
  }
  const bool logits = outputs == Outputs::kLogitsAndProbabilities;
  b.head(x, channels, net.classes, logits ? "logits" : "head_logits");
  NodeProto* softmax = b.node("Softmax", {logits ? "logits" : "head_logits"}, "probabilities");
  GraphBuilder::integer(softmax, "axis", 1);
  const std::vector<std::string> out_dims = {"N", "K", net.same_padding ? "H" : "H_out", net.same_padding ? "W" : "W_out"};
  if (logits) tensor_value(g->add_output(), "logits", out_dims, net.classes);
  tensor_value(g->add_output(), "probabilities", out_dims, net.classes);
}

}  // namespace

bool available() { return true; }

std::string build_model(const Network& network, const FileInfo& info) {
  onnx::ModelProto model;
  model.set_ir_version(8);  // what ONNX 1.12 (Debian 12's libonnx) writes for opset 17
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  model.set_producer_name("unet");
  model.set_producer_version(info.producer_version);
  model.set_doc_string(info.doc);
  for (const auto& [key, value] : info.metadata) {
    auto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  GraphProto* g = model.mutable_graph();
  g->set_name("unet");
  add_graph(g, network, info.outputs);
  try {
    onnx::checker::check_model(model);
    // Strict shape inference with data propagation, as onnx.checker's full check does: every node's
    // output type must follow from its inputs, including the crop's shape arithmetic.
    onnx::ShapeInferenceOptions options{/*check_type=*/true, /*error_mode=*/1, /*enable_data_propagation=*/true};
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("the ONNX checker rejected the graph: ") + e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("cannot serialise the ONNX model");
  return bytes;
}

}  // namespace unet::onnx_export
