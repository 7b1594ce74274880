// The U-Net as an ONNX graph: Conv+Relu pairs, MaxPool, ConvTranspose+Relu, a centre crop of the
// skip connection computed from the tensors' shapes (so that height and width stay symbolic),
// Concat, the 1x1 head and a Softmax over the classes. Mirrors UNetImpl::forward op by op; the
// tests run the file in ONNX Runtime and OpenVINO against the native model.
#include "unet/onnx/writer.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <map>
#include <stdexcept>

namespace unet::onnx_export {
namespace {

using onnx::AttributeProto;
using onnx::GraphProto;
using onnx::NodeProto;
using onnx::TensorProto;

/// Appends nodes to a graph, naming their outputs uniquely.
class GraphBuilder {
 public:
  GraphBuilder(GraphProto* graph, const Network& network) : graph_(graph) {
    for (const Weight& w : network.weights) weights_[w.name] = &w;
  }

  /// Adds the network's weight `name` as an initializer of `shape`; returns its name.
  std::string weight(const std::string& name, const std::vector<int64_t>& shape) {
    const auto it = weights_.find(name);
    if (it == weights_.end()) throw std::runtime_error("the network has no weight " + name);
    const Weight& w = *it->second;
    if (w.shape != shape) throw std::runtime_error("weight " + name + " has an unexpected shape");
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    if (static_cast<int64_t>(w.values.size()) != count) throw std::runtime_error("weight " + name + " has the wrong number of values");
    TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(w.values.data()), w.values.size() * sizeof(float)));
    return name;
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

  /// relu(conv3x3(x) + b) of the module `prefix` (prefix.weight [out, in, 3, 3], prefix.bias [out]).
  std::string conv_relu(const std::string& x, const std::string& prefix, int64_t in, int64_t out, int64_t pad) {
    NodeProto* c = node("Conv", {x, weight(prefix + ".weight", {out, in, 3, 3}), weight(prefix + ".bias", {out})});
    ints(c, "kernel_shape", {3, 3});
    ints(c, "pads", {pad, pad, pad, pad});
    ints(c, "strides", {1, 1});
    return node("Relu", {c->output(0)})->output(0);
  }

 private:
  GraphProto* graph_;
  std::map<std::string, const Weight*> weights_;
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

  std::string x = "image";
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
    x = pool->output(0);
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
    const int64_t k = net.up_kernel;
    NodeProto* up = b.node("ConvTranspose", {x, b.weight(u + ".weight", {channels, out, k, k}), b.weight(u + ".bias", {out})});
    GraphBuilder::ints(up, "kernel_shape", {k, k});
    GraphBuilder::ints(up, "strides", {2, 2});
    GraphBuilder::ints(up, "pads", k == 3 ? std::vector<int64_t>{1, 1, 1, 1} : std::vector<int64_t>{0, 0, 0, 0});
    if (k == 3) GraphBuilder::ints(up, "output_padding", {1, 1});
    x = b.node("Relu", {up->output(0)})->output(0);
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
      skip = b.node("Slice", {skip, start, end, axes})->output(0);
    }
    NodeProto* cat = b.node("Concat", {x, skip});
    GraphBuilder::integer(cat, "axis", 1);
    const std::string p = "up." + std::to_string(i);
    x = b.conv_relu(cat->output(0), p + ".conv1", 2 * out, out, pad);
    x = b.conv_relu(x, p + ".conv2", out, out, pad);
    channels = out;
  }
  const bool logits = outputs == Outputs::kLogitsAndProbabilities;
  b.node("Conv", {x, b.weight("head.weight", {net.classes, channels, 1, 1}), b.weight("head.bias", {net.classes})},
         logits ? "logits" : "head_logits");
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
