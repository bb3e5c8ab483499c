// Triton's system shared memory extension (docs/http-api.md, "Shared memory") against the real
// `respawn` and the fake worker, which echoes its inputs as outputs: regions registered by name,
// inputs read from them and outputs written to them, every misuse a 400 that leaves the server
// serving, and a client that shrinks its object after registering it gets an error, not a
// crashed server. Off unless --allow-client-shm.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

// A POSIX shared memory object of `size` bytes, unlinked at the end of the test.
class ShmObject {
 public:
  explicit ShmObject(std::size_t size)
      : key_("/respawn-test-" + std::to_string(::getpid()) + "-" + std::to_string(next_++)) {
    fd_ = ::shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(size)), 0);
  }
  ~ShmObject() {
    ::close(fd_);
    ::shm_unlink(key_.c_str());
  }
  const std::string& key() const { return key_; }
  void write(std::size_t offset, const std::string& bytes) const {
    EXPECT_EQ(::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(bytes.size()));
  }
  std::string read(std::size_t offset, std::size_t size) const {
    std::string out(size, '\0');
    EXPECT_EQ(::pread(fd_, out.data(), size, static_cast<off_t>(offset)),
              static_cast<ssize_t>(size));
    return out;
  }
  void truncate(std::size_t size) const {
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(size)), 0);
  }

 private:
  static inline int next_ = 0;
  std::string key_;
  int fd_ = -1;
};

std::string floats(const std::vector<float>& values) {
  std::string out(values.size() * sizeof(float), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

HttpResult register_region(const Server& s, const std::string& name, const std::string& key,
                           std::uint64_t offset, std::uint64_t size) {
  return s.post("/v2/systemsharedmemory/region/" + name + "/register",
                json{{"key", key}, {"offset", offset}, {"byte_size", size}}.dump());
}

// An infer request whose input `x` (FP32 [4]) lies at `in_offset` of region `in`, and whose
// output (the echo, also named `x`) goes to region `out`.
std::string shm_infer(const std::string& in, std::uint64_t in_offset, const std::string& out,
                      std::uint64_t out_size) {
  return json{
      {"inputs",
       {{{"name", "x"},
         {"datatype", "FP32"},
         {"shape", {4}},
         {"parameters",
          {{"shared_memory_region", in},
           {"shared_memory_byte_size", 16},
           {"shared_memory_offset", in_offset}}}}}},
      {"outputs",
       {{{"name", "x"},
         {"parameters", {{"shared_memory_region", out}, {"shared_memory_byte_size", out_size}}}}}}}
      .dump();
}

TEST(SharedMemory, IsOffWithoutTheFlag) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready());
  ShmObject object(64);
  const auto r = register_region(server, "in", object.key(), 0, 64);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.json().value("error", "").find("--allow-client-shm"), std::string::npos) << r.body;
  const auto infer = server.post("/v2/models/demo/infer", shm_infer("in", 0, "in", 16));
  EXPECT_EQ(infer.status, 400) << infer.body;
  EXPECT_NE(infer.json().value("error", "").find("--allow-client-shm"), std::string::npos);
  const auto extensions = server.get("/v2").json()["extensions"];
  EXPECT_EQ(std::count(extensions.begin(), extensions.end(), "system_shared_memory"), 0);
}

TEST(SharedMemory, InputsAreReadFromARegionAndOutputsWrittenToOne) {
  Server server(fake_args({"--allow-client-shm"}));
  ASSERT_TRUE(server.wait_ready());
  const auto extensions = server.get("/v2").json()["extensions"];
  EXPECT_EQ(std::count(extensions.begin(), extensions.end(), "system_shared_memory"), 1);
  ShmObject input(4096 + 64), output(128);
  input.write(4096 + 8, floats({1.5f, -2, 3, 4.25f}));
  // A region at an offset that is no page boundary, and the input at an offset within it.
  ASSERT_EQ(register_region(server, "in", input.key(), 4096, 64).status, 200);
  ASSERT_EQ(register_region(server, "out", output.key(), 0, 128).status, 200);
  const auto status = server.get("/v2/systemsharedmemory/status");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(status.json(), json::parse(R"([
      {"name":"in","key":")" + input.key() +
                                       R"(","offset":4096,"byte_size":64},
      {"name":"out","key":")" + output.key() +
                                       R"(","offset":0,"byte_size":128}])"));
  EXPECT_EQ(server.get("/v2/systemsharedmemory/region/out/status").json().size(), 1);

  const auto r = server.post("/v2/models/demo/infer", shm_infer("in", 8, "out", 128));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto reply = r.json();
  ASSERT_TRUE(reply["outputs"].is_array()) << r.body;
  const auto& out = reply["outputs"][0];
  EXPECT_FALSE(out.contains("data")) << r.body;
  EXPECT_EQ(out["shape"], json::array({4}));
  EXPECT_EQ(out["parameters"]["shared_memory_region"], "out");
  EXPECT_EQ(out["parameters"]["shared_memory_byte_size"], 16);
  EXPECT_EQ(output.read(0, 16), floats({1.5f, -2, 3, 4.25f}));
  // The same region for input and output, and a JSON output beside it.
  const auto same = server.post("/v2/models/demo/infer", json{{"inputs",
                                                               {{{"name", "x"},
                                                                 {"datatype", "FP32"},
                                                                 {"shape", {4}},
                                                                 {"parameters",
                                                                  {{"shared_memory_region", "in"},
                                                                   {"shared_memory_byte_size", 16},
                                                                   {"shared_memory_offset", 8}}}}}}}
                                                             .dump());
  ASSERT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(same.json()["outputs"][0]["data"], json::array({1.5, -2, 3, 4.25}));

  // Unregistered, a region is gone; unregistering everything empties the list.
  EXPECT_EQ(server.post("/v2/systemsharedmemory/region/out/unregister", "").status, 200);
  const auto gone = server.get("/v2/systemsharedmemory/region/out/status");
  EXPECT_EQ(gone.status, 404);
  // Triton's words, which its clients and tests look for.
  EXPECT_EQ(gone.json().value("error", ""), "Unable to find system shared memory region: 'out'");
  EXPECT_EQ(server.post("/v2/models/demo/infer", shm_infer("in", 8, "out", 128)).status, 400);
  EXPECT_EQ(server.post("/v2/systemsharedmemory/unregister", "").status, 200);
  EXPECT_EQ(server.get("/v2/systemsharedmemory/status").json(), json::array());
}

TEST(SharedMemory, MisuseIsA400AndTheServerKeepsServing) {
  Server server(fake_args({"--allow-client-shm"}));
  ASSERT_TRUE(server.wait_ready());
  ShmObject object(64);
  const auto error = [](const HttpResult& r) { return r.json().value("error", ""); };
  // Registration: no such object, a region past its end, a bad body, a name taken twice.
  auto r = register_region(server, "a", "/respawn-test-no-such-object", 0, 8);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("cannot open"), std::string::npos) << r.body;
  r = register_region(server, "a", object.key(), 32, 64);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("no room"), std::string::npos) << r.body;
  EXPECT_EQ(server.post("/v2/systemsharedmemory/region/a/register", R"({"key":7})").status, 400);
  EXPECT_EQ(server.post("/v2/systemsharedmemory/region/a/register", "{").status, 400);
  ASSERT_EQ(register_region(server, "a", object.key(), 0, 64).status, 200);
  r = register_region(server, "a", object.key(), 0, 64);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("already registered"), std::string::npos) << r.body;
  // Requests: an unknown region, a tensor past the region's end, an output too small for its
  // tensor, a size without a region, both data and a region.
  r = server.post("/v2/models/demo/infer", shm_infer("nope", 0, "a", 16));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("Unable to find system shared memory region: 'nope'"), std::string::npos)
      << r.body;
  r = server.post("/v2/models/demo/infer", shm_infer("a", 56, "a", 16));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("do not fit"), std::string::npos) << r.body;
  r = server.post("/v2/models/demo/infer", shm_infer("a", 0, "a", 8));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("more than the 8"), std::string::npos) << r.body;
  auto body = json::parse(shm_infer("a", 0, "a", 16));
  body["inputs"][0]["parameters"]["shared_memory_byte_size"] = 32;  // FP32 [4] is 16 bytes
  r = server.post("/v2/models/demo/infer", body.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("take 16 bytes"), std::string::npos) << r.body;
  body = json::parse(shm_infer("a", 0, "a", 16));
  body["inputs"][0]["parameters"].erase("shared_memory_region");
  EXPECT_EQ(server.post("/v2/models/demo/infer", body.dump()).status, 400);
  body = json::parse(shm_infer("a", 0, "a", 16));
  body["inputs"][0]["data"] = {1, 2, 3, 4};
  EXPECT_EQ(server.post("/v2/models/demo/infer", body.dump()).status, 400);
  // More than a frame can carry to the worker: 413 before anything is read (the object is
  // sparse: tmpfs gives it no memory until it is written).
  {
    constexpr std::uint64_t big = 300u << 20;
    ShmObject large(big);
    ASSERT_EQ(register_region(server, "big", large.key(), 0, big).status, 200);
    auto huge = json::parse(shm_infer("big", 0, "a", 16));
    huge["inputs"][0]["shape"] = {big / 4};
    huge["inputs"][0]["parameters"]["shared_memory_byte_size"] = big;
    r = server.post("/v2/models/demo/infer", huge.dump());
    EXPECT_EQ(r.status, 413) << r.body;
    EXPECT_NE(error(r).find("frame limit"), std::string::npos) << r.body;
    EXPECT_EQ(server.post("/v2/systemsharedmemory/region/big/unregister", "").status, 200);
  }
  // CUDA shared memory: refused.
  r = server.post("/v2/cudasharedmemory/region/g/register", "{}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("CUDA shared memory is not supported"), std::string::npos) << r.body;
  EXPECT_EQ(server.get("/v2/systemsharedmemory/region/a/register").status, 405);
  // An object shrunk after its registration: an error for the request, not a crash.
  object.truncate(8);
  r = server.post("/v2/models/demo/infer", shm_infer("a", 0, "a", 16));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error(r).find("shorter than registered"), std::string::npos) << r.body;
  object.truncate(64);
  EXPECT_EQ(server.post("/v2/models/demo/infer", shm_infer("a", 0, "a", 16)).status, 200);
  EXPECT_EQ(server
                .post("/v2/models/demo/generate",
                      R"({"text_input":"still","parameters":{"max_tokens":2}})")
                .status,
            200);
}

}  // namespace
}  // namespace respawn::test
