#include "host_model.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "error_classifier.hpp"

namespace respawn::worker {

void release(HostModel* model) {
  delete model;
}

// A TorchScript module as torch::jit::load reads it onto `device`: from the bytes a fork server
// holds, else from the file.
torch::jit::Module read_torchscript(const std::string& path, const HostModel* host,
                                    torch::Device device, torch::jit::ExtraFilesMap& extra) {
  if (host && !host->bytes.empty()) {
    std::istringstream in(host->bytes);
    return torch::jit::load(in, device, extra);
  }
  return torch::jit::load(path, device, extra);
}

HostModelPtr ModelRunner::preload(const LoadOptions& options, std::string& what, bool bytes) {
  HostModelPtr host(nullptr, release);
  const std::string& path = options.model_path;
  what = "nothing";
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".pt2") == 0) return host;
  host.reset(new HostModel{options.model_path, {}, {}, {}, 0});
  // Where the worker will run, without asking CUDA (which must stay uninitialized here): a
  // machine with an NVIDIA driver will most likely give `auto` a GPU.
  const bool gpu_likely = options.device == "cuda" ||
                          (options.device == "auto" && ::access("/dev/nvidiactl", F_OK) == 0);
  try {
    if (gpu_likely || bytes) {
      std::ifstream in(options.model_path, std::ios::binary);
      if (!in) throw std::runtime_error(std::strerror(errno));
      host->bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      // Deserializing would need a device; the archive's table of contents does not. A file
      // that is no TorchScript archive fails here (at a reload, before the worker goes).
      std::istringstream archive(host->bytes);
      caffe2::serialize::PyTorchStreamReader reader(&archive);
      if (!reader.hasRecord("data.pkl") || !reader.hasRecord("constants.pkl")) {
        throw std::runtime_error("not a TorchScript archive (torch.jit.save)");
      }
      what = "file bytes";
    } else {
      torch::jit::ExtraFilesMap extra{{"respawn.json", ""}};
      host->module = torch::jit::load(options.model_path, torch::kCPU, extra);
      host->spec = extra["respawn.json"];
      what = "module";
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load model " + options.model_path + ": " +
                             classify_failure(ExceptionFamily::torch_other, e.what()).message);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot load model " + options.model_path + ": " + e.what());
  }
  if (host->module) {
    // The warm-up's product, TorchScript's profiled and optimized plan of each method, is host
    // data that every forked worker then shares instead of building it again (most of a forked
    // worker's start). It runs on one intra-op thread, which OpenMP runs inline, so no thread is
    // started (the fork server checks); the workers go back to the default.
    host->threads = at::get_num_threads();
    at::set_num_threads(1);
    LoadOptions warm = options;
    warm.device = "cpu";
    warm.threads = 1;
    load(warm, host.get());
  }
  return host;
}

}  // namespace respawn::worker
