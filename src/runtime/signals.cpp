// The stop request set by SIGINT, SIGTERM and SIGHUP, and the immediate exit on a second signal.
#include "unet/runtime/signals.h"

#include <atomic>
#include <csignal>

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
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(s, &action, nullptr);
  }
}

int stop_requested() { return g_stop.load(); }

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal " + std::to_string(signal);
  }
}

}  // namespace unet
