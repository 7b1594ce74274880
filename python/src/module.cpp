// The Python module `unet._unet`: thin bindings over the C++ core, and nothing of its own.
//
// Two things cross: the `Segmenter` of unet_infer (a model loaded once, NumPy images in,
// probabilities, masks and labels out as NumPy arrays that own the result tensors' memory, no
// copy), and the subcommands of the `unet` program (tools/embed.h), run in-process with their own
// option table, checks and messages. The GIL is released while C++ works; Ctrl-C asks a training
// run to finish its step and save, as in a terminal; errors become Python exceptions carrying the
// command line's one-line messages. The layouts, dtypes and keyword arguments are the Python
// package's (python/unet/__init__.py).
#include "embed.h"
#include "flags.h"
#include "pretrained.h"

#include "unet/data/synthetic.h"
#include "unet/dist/dist.h"
#include "unet/infer/segmenter.h"
#include "unet/runtime/signals.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>

namespace nb = nanobind;

namespace {

PyObject* g_error = nullptr;         // unet.Error (RuntimeError)
PyObject* g_option_error = nullptr;  // unet.OptionError (unet.Error, ValueError)

/// A result tensor as a NumPy array that keeps the tensor (and so its memory) alive.
template <typename T>
nb::ndarray<nb::numpy, T> to_numpy(const at::Tensor& tensor) {
  auto* owned = new at::Tensor(tensor.contiguous());
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<at::Tensor*>(p); });
  std::vector<size_t> shape(owned->sizes().begin(), owned->sizes().end());
  return nb::ndarray<nb::numpy, T>(owned->data_ptr<T>(), shape.size(), shape.data(), owner);
}

using Image = nb::ndarray<nb::c_contig, nb::device::cpu, nb::ndim<3>>;

/// [C, H, W] pixels as `read_image` would have given them: 8-bit, 16-bit (int32 holding 0..65535),
/// or float32 taken as [0, 1]. 8-bit and float32 arrays are used in place.
unet::RawImage raw_image(const Image& image) {
  const std::vector<int64_t> shape = {static_cast<int64_t>(image.shape(0)), static_cast<int64_t>(image.shape(1)),
                                      static_cast<int64_t>(image.shape(2))};
  void* data = const_cast<void*>(image.data());
  const nb::dlpack::dtype type = image.dtype();
  unet::RawImage raw;
  if (type == nb::dtype<uint8_t>()) {
    raw.pixels = at::from_blob(data, shape, at::kByte);
    raw.format = unet::SampleFormat::kUInt8;
  } else if (type == nb::dtype<uint16_t>()) {
    raw.pixels = at::from_blob(data, shape, at::kShort).to(at::kInt).bitwise_and(0xFFFF);
    raw.format = unet::SampleFormat::kUInt16;
  } else if (type == nb::dtype<float>()) {
    raw.pixels = at::from_blob(data, shape, at::kFloat);
    raw.format = unet::SampleFormat::kFloat32;
  } else {
    throw unet::Error("images are uint8, uint16 or float32 arrays");
  }
  return raw;
}

unet::InstanceMethod instance_method(const std::string& name) {
  if (name == "components") return unet::InstanceMethod::kComponents;
  if (name == "watershed") return unet::InstanceMethod::kWatershed;
  throw unet::OptionError("instances", ": expected components or watershed, got '" + name + "'");
}

/// A model loaded once, with the device and threads it runs on.
struct PySegmenter {
  unet::Segmenter segmenter;
  unet::RunContext context;
};

PySegmenter load_segmenter(const std::string& path, const std::vector<std::string>& args) {
  const unet::cli::SegmentOptions o = unet::cli::parse_segment_options(args);
  nb::gil_scoped_release released;
  unet::RunContext context = unet::make_run_context(o.runtime, unet::DistEnv{});
  unet::Segmenter segmenter = unet::Segmenter::load(path, o.infer, context);
  return PySegmenter{std::move(segmenter), std::move(context)};
}

nb::tuple segment(PySegmenter& self, const Image& image, std::optional<std::string> instances) {
  const unet::RawImage raw = raw_image(image);
  const std::optional<unet::InstanceMethod> method =
      instances ? std::optional<unet::InstanceMethod>(instance_method(*instances)) : std::nullopt;
  unet::Segmentation out;
  {
    nb::gil_scoped_release released;
    out = self.segmenter.segment(raw, method.has_value(), method.value_or(unet::InstanceMethod::kComponents));
  }
  nb::object labels = out.labels.defined() ? nb::cast(to_numpy<int32_t>(out.labels)) : nb::none();
  return nb::make_tuple(to_numpy<float>(out.probabilities), to_numpy<uint8_t>(out.mask), labels);
}

/// Runs a subcommand with `progress` called (GIL held) at each logged training step. An exception
/// in `progress` stops the run as Ctrl-C does (the step finishes and is saved) and is raised after.
std::string run_command(const std::vector<std::string>& args, const nb::object& progress) {
  std::optional<nb::python_error> raised;
  unet::cli::CommandHooks hooks;
  if (!progress.is_none()) {
    hooks.train_progress = [&progress, &raised](const unet::TrainProgress& p) {
      nb::gil_scoped_acquire held;
      if (raised) return;
      try {
        progress(p.step, p.max_steps, p.loss, p.images_per_second);
      } catch (nb::python_error& e) {
        raised.emplace(std::move(e));
        unet::request_stop(SIGINT);
      }
    };
  }
  std::string help;
  try {
    nb::gil_scoped_release released;
    unet::StopScope stop_on_ctrl_c;
    help = unet::cli::run_command(args, hooks);
  } catch (const unet::Stopped&) {
    if (raised) throw std::move(*raised);
    throw;
  }
  if (raised) throw std::move(*raised);
  return help;
}

nb::list describe_options(const std::vector<unet::cli::OptionInfo>& options) {
  nb::list out;
  for (const auto& o : options) {
    nb::dict d;
    d["names"] = o.names;
    d["flag"] = o.flag;
    d["optional_value"] = o.optional_value;
    d["many"] = o.many;
    d["default"] = o.default_text;
    d["help"] = o.help;
    out.append(d);
  }
  return out;
}

/// The embedded synthetic data (what --synthetic trains on): image k of `kind` ("em", "nuclei") of
/// side `size`, as uint8 [S, S], and its truth (em: the 0/255 mask; nuclei: int32 instance labels).
nb::tuple synthetic(const std::string& kind, int64_t size, int64_t index, uint64_t seed) {
  unet::SyntheticOptions o;
  o.kind = unet::parse_name(unet::synthetic_kind_names(), "kind", kind);
  o.size = size;
  o.seed = seed;
  if (size < 32 || size > 4096) throw unet::OptionError("size", ": expected 32 to 4096 pixels, got " + std::to_string(size));
  if (o.kind == unet::SyntheticKind::kNuclei) {
    auto [image, labels] = unet::synthetic_nuclei(o, index);
    return nb::make_tuple(to_numpy<uint8_t>(image.pixels[0]), to_numpy<int32_t>(labels.to(at::kInt)));
  }
  auto [image, mask] = unet::synthetic_slice(o, index);
  return nb::make_tuple(to_numpy<uint8_t>(image.pixels[0]), to_numpy<uint8_t>(mask.pixels[0]));
}

void translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const unet::Stopped& e) {
    const std::string text = e.what();
    PyErr_SetString(PyExc_KeyboardInterrupt, (text + (text.find("; checkpoint ") != std::string::npos ? " (continue with resume=True)" : "")).c_str());
  } catch (const unet::OptionError& e) {
    PyErr_SetString(g_option_error, unet::cli::describe(e).c_str());
  } catch (const CLI::ParseError& e) {
    PyErr_SetString(g_option_error, e.what());
  } catch (const unet::Error& e) {
    PyErr_SetString(g_error, e.what());
  } catch (const c10::Error& e) {
    const std::string text = e.what_without_backtrace();
    PyErr_SetString(text.find("not enough memory") != std::string::npos ? PyExc_MemoryError : g_error,
                    text.substr(0, text.find('\n')).c_str());
  } catch (const std::filesystem::filesystem_error& e) {
    const std::string where = e.path1().empty() ? std::string() : e.path1().string() + ": ";
    PyErr_SetString(g_error, (where + e.code().message()).c_str());
  }
}

}  // namespace

NB_MODULE(_unet, m) {
  m.doc() = "unet's C++ core: the Segmenter and the subcommands of the unet program (use the package `unet`).";
  // LibTorch's own log lines would come before the one-line errors, as in the unet program.
  if (!std::getenv("TORCH_CPP_LOG_LEVEL")) FLAGS_caffe2_log_level = c10::GLOG_FATAL;
  // Objects that a viewer or a notebook still holds at exit are not leaks worth a report.
  nb::set_leak_warnings(false);
  g_error = PyErr_NewExceptionWithDoc("unet.Error", "An error of unet's, with the unet program's one-line message.",
                                      PyExc_RuntimeError, nullptr);
  nb::object bases = nb::make_tuple(nb::handle(g_error), nb::handle(PyExc_ValueError));
  g_option_error = PyErr_NewExceptionWithDoc("unet.OptionError", "An option out of range, unknown, or contradicting another.",
                                             bases.ptr(), nullptr);
  m.attr("Error") = nb::handle(g_error);
  m.attr("OptionError") = nb::handle(g_option_error);
  if (!g_error || !g_option_error) throw nb::python_error();
  nb::register_exception_translator(translate);

  nb::class_<PySegmenter>(m, "Segmenter")
      .def_prop_ro("input_size", [](const PySegmenter& s) { return s.segmenter.input_size(); })
      .def_prop_ro("channels", [](const PySegmenter& s) { return s.segmenter.model_options().in_channels(); })
      .def_prop_ro("classes", [](const PySegmenter& s) { return s.segmenter.model_options().classes(); })
      .def_prop_ro("class_names", [](const PySegmenter& s) { return s.segmenter.naming().names; })
      .def_prop_ro("scheme", [](const PySegmenter& s) { return unet::to_string(s.segmenter.model_options().scheme()); })
      .def_prop_ro("normalisation", [](const PySegmenter& s) { return s.segmenter.normalisation().describe(); })
      .def_prop_ro("has_objects", [](const PySegmenter& s) {
        return unet::has_objects(s.segmenter.model_options().classes(), s.segmenter.model_options().scheme());
      })
      .def_prop_ro("device", [](const PySegmenter& s) { return s.context.device.str(); })
      .def("segment", &segment, nb::arg("image"), nb::arg("instances") = nb::none());
  m.def("load_segmenter", &load_segmenter, nb::arg("path"), nb::arg("args"));
  m.def("run_command", &run_command, nb::arg("args"), nb::arg("progress") = nb::none());
  m.def("command_options", [](const std::string& c) { return describe_options(unet::cli::command_options(c)); });
  m.def("segment_options", [] { return describe_options(unet::cli::segment_options()); });
  m.def("command_names", &unet::cli::command_names);
  m.def("synthetic", &synthetic, nb::arg("kind"), nb::arg("size") = 256, nb::arg("index") = 0, nb::arg("seed") = 0);
  m.def("pretrained_model_dir", &unet::cli::pretrained_model_dir, nb::arg("name"));
  m.def("pretrained_models", [] {
    std::vector<std::tuple<std::string, std::string>> out;
    for (const auto& model : unet::cli::pretrained_models()) out.emplace_back(model.name, model.summary);
    return out;
  });
}
