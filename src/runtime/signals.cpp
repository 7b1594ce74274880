// The stop request set by SIGINT, SIGTERM and SIGHUP, and the immediate exit on a second signal.
#include "unet/runtime/signals.h"

#include <atomic>
#include <csignal>
#include <memory>

namespace unet {
namespace {

std::atomic<int> g_stop{0};

extern "C" void on_stop_signal(int signal) {
  if (g_stop.exchange(signal) != 0) {
    // Asked twice: stop now, with the signal's own default action and exit status.
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

}  // namespace

void install_stop_handlers() {
  for (int s : kStopSignals) {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(s, &action, nullptr);
  }
}

int stop_requested() { return g_stop.load(); }

void request_stop(int signal) {
  int none = 0;
  g_stop.compare_exchange_strong(none, signal);
}

struct StopScope::Saved {
  struct sigaction actions[std::size(kStopSignals)];
};

StopScope::StopScope() : saved_(std::make_unique<Saved>()) {
  for (size_t i = 0; i < std::size(kStopSignals); ++i) sigaction(kStopSignals[i], nullptr, &saved_->actions[i]);
  g_stop.store(0);
}

StopScope::~StopScope() {
  for (size_t i = 0; i < std::size(kStopSignals); ++i) sigaction(kStopSignals[i], &saved_->actions[i], nullptr);
  g_stop.store(0);
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal " + std::to_string(signal);
  }
}

}  // namespace unet
