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
#include "errors.h"
#include "flags.h"
#include "pretrained.h"

#include "unet/data/source.h"
#include "unet/data/synthetic.h"
#include "unet/dist/dist.h"
#include "unet/infer/segmenter.h"
#include "unet/runtime/signals.h"
#include "unet/runtime/version.h"

#include <ATen/ATen.h>
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
#include <memory>
#include <mutex>
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

/// Read-only arrays too (`np.asarray` of a PIL image, memory maps): the pixels are only read.
using Image = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu, nb::ndim<3>>;

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
  return unet::parse_name(unet::instance_method_names(), "instances", name);
}

/// A model loaded once, with the device and threads it runs on. A predictor keeps state between
/// calls (packed weights, CUDA graphs): one prediction at a time per Segmenter, a second thread's
/// call waits.
struct PySegmenter {
  unet::Segmenter segmenter;
  unet::RunContext context;
  std::unique_ptr<std::mutex> busy = std::make_unique<std::mutex>();
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
    const std::lock_guard<std::mutex> one_at_a_time(*self.busy);
    out = self.segmenter.segment(raw, method.has_value(), method.value_or(unet::InstanceMethod::kComponents));
  }
  nb::object labels = out.labels.defined() ? nb::cast(to_numpy<int32_t>(out.labels)) : nb::none();
  return nb::make_tuple(to_numpy<float>(out.probabilities), to_numpy<uint8_t>(out.mask), labels);
}

/// Runs a subcommand (`unet::cli::run_command`) with `progress` called (GIL held) at each logged
/// training step: returns its help text ("" when it ran) and the JSON files of results it wrote.
/// An exception in `progress` stops the run as Ctrl-C does (the step finishes and is saved) and is
/// raised after. One command at a time in a process: the signal handlers and
/// the hooks are the process's; a second thread's call waits for the first, and a command started
/// from a progress callback is refused. Training commands install unet's stop handlers (Ctrl-C
/// finishes the step and saves); Python's are back when the call returns, and a stop that came
/// after the last step raises KeyboardInterrupt then.
std::tuple<std::string, std::vector<std::string>> run_command(const std::vector<std::string>& args, const nb::object& progress) {
  static std::mutex one_at_a_time;
  static thread_local bool inside = false;
  if (inside) throw unet::Error("a unet command cannot run inside another's progress callback");
  std::optional<nb::python_error> raised;
  std::vector<std::string> results;
  unet::cli::CommandHooks hooks;
  hooks.results_written = [&results](const std::string& path) { results.push_back(path); };
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
  int late_stop = 0;
  try {
    nb::gil_scoped_release released;
    const std::lock_guard<std::mutex> running(one_at_a_time);
    inside = true;
    const struct Leave { ~Leave() { inside = false; } } leave;
    unet::StopScope handlers_restored_after;
    help = unet::cli::run_command(args, hooks);
    late_stop = unet::stop_requested();
  } catch (const unet::Stopped&) {
    if (raised) throw std::move(*raised);
    throw;
  }
  if (raised) throw std::move(*raised);
  if (late_stop) {
    PyErr_SetString(PyExc_KeyboardInterrupt, ("stopped by " + unet::signal_name(late_stop) + " after '" + args.front() +
                                              "' had finished").c_str());
    throw nb::python_error();
  }
  return {help, results};
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
  unet::DataOptions checked;  // the data options' own limits
  checked.synthetic = o;
  checked.validate();
  if (o.kind == unet::SyntheticKind::kNuclei) {
    auto [image, labels] = unet::synthetic_nuclei(o, index);
    return nb::make_tuple(to_numpy<uint8_t>(image.pixels[0]), to_numpy<int32_t>(labels.to(at::kInt)));
  }
  auto [image, mask] = unet::synthetic_slice(o, index);
  return nb::make_tuple(to_numpy<uint8_t>(image.pixels[0]), to_numpy<uint8_t>(mask.pixels[0]));
}

/// unet's exceptions as Python's, with the unet program's words (tools/errors.h); anything else
/// (nanobind's own, a Python error coming back) is left to nanobind.
void translate(const std::exception_ptr& p, void*) {
  const std::optional<unet::cli::ErrorReport> report = unet::cli::describe_error(p);
  if (!report) std::rethrow_exception(p);
  switch (report->kind) {
    case unet::cli::ErrorKind::kStopped: {
      const std::string& text = report->message;
      const bool saved = text.find("; checkpoint ") != std::string::npos;
      PyErr_SetString(PyExc_KeyboardInterrupt, (text + (saved ? " (continue with resume=True)" : "")).c_str());
      return;
    }
    case unet::cli::ErrorKind::kUsage:
    case unet::cli::ErrorKind::kOption: PyErr_SetString(g_option_error, report->message.c_str()); return;
    case unet::cli::ErrorKind::kMemory: PyErr_SetString(PyExc_MemoryError, report->message.c_str()); return;
    case unet::cli::ErrorKind::kFailure: PyErr_SetString(g_error, report->message.c_str()); return;
  }
}

}  // namespace

NB_MODULE(_unet, m) {
  m.attr("__version__") = unet::kVersion;
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
  m.def("synthetic", &synthetic, nb::arg("kind"), nb::arg("size") = unet::SyntheticOptions{}.size, nb::arg("index") = 0,
        nb::arg("seed") = unet::kDefaultSeed);
  m.def("pretrained_model_dir", &unet::cli::pretrained_model_dir, nb::arg("name"));
  m.def("pretrained_models", [] {
    std::vector<std::tuple<std::string, std::string>> out;
    for (const auto& model : unet::cli::pretrained_models()) out.emplace_back(model.name, model.summary);
    return out;
  });
}
