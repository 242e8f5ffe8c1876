// File extent maps: ioctl(FS_IOC_FIEMAP), the storage counterpart of pagemap. readFiemap()
// opens the file, asks the file system for every extent of a byte range in one batch call
// (continued from the last extent only when the kernel filled the whole buffer without
// reaching FIEMAP_EXTENT_LAST), and returns the extents raw: four u64 per extent (logical,
// physical, length, flags), in file order. Decoding the flags (SHARED, LAST, DELALLOC, ...)
// and wording errors is done in TypeScript (src/storage/fiemap.ts).
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "fd.h"

namespace cowlab {
namespace {


struct FiemapBuffer {
  struct fiemap* map;
  explicit FiemapBuffer(uint32_t count)
      : map(static_cast<struct fiemap*>(calloc(1, sizeof(struct fiemap) + count * sizeof(struct fiemap_extent)))) {}
  ~FiemapBuffer() { free(map); }
  FiemapBuffer(const FiemapBuffer&) = delete;
  FiemapBuffer& operator=(const FiemapBuffer&) = delete;
};

constexpr size_t kWordsPerExtent = 4;

// readFiemap(path, start, length, capacity, flags) -> ArrayBuffer of extents * 4 u64:
// fe_logical, fe_physical, fe_length, fe_flags. `length` 0 means to the end of the file
// (FIEMAP_MAX_OFFSET). `capacity` is the extent count of one ioctl's buffer; `flags` are
// FIEMAP_FLAG_* (FIEMAP_FLAG_SYNC: write dirty pages back first, so no extent is delalloc).
Napi::Value ReadFiemap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "readFiemap";
  if (info.Length() < 1 || !info[0].IsString()) ThrowBadArg(env, fn, "path", "a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  uint64_t start = ArgCount(info, 1, fn, "start");
  uint64_t length = ArgCount(info, 2, fn, "length");
  uint64_t capacity = ArgCount(info, 3, fn, "capacity", 1u << 20);
  uint64_t flags = ArgCount(info, 4, fn, "flags", 0xffffffffu);
  if (capacity == 0) ThrowBadArg(env, fn, "capacity", "positive");

  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.fd < 0) throw MakeSyscallError(env, "open", errno, "opening " + path);
  FiemapBuffer buf(static_cast<uint32_t>(capacity));
  if (buf.map == nullptr) throw MakeSyscallError(env, "calloc", ENOMEM, "the FIEMAP buffer");

  const uint64_t end = length == 0 ? FIEMAP_MAX_OFFSET : start + length;
  std::vector<uint64_t> words;
  uint64_t at = start;
  for (;;) {
    memset(buf.map, 0, sizeof(struct fiemap));
    buf.map->fm_start = at;
    buf.map->fm_length = end - at;
    buf.map->fm_flags = static_cast<uint32_t>(flags);
    buf.map->fm_extent_count = static_cast<uint32_t>(capacity);
    if (ioctl(fd.fd, FS_IOC_FIEMAP, buf.map) < 0) throw MakeSyscallError(env, "ioctl", errno, "FS_IOC_FIEMAP of " + path);
    const uint32_t n = buf.map->fm_mapped_extents;
    bool last = n == 0;
    for (uint32_t i = 0; i < n; i++) {
      const struct fiemap_extent& e = buf.map->fm_extents[i];
      words.push_back(e.fe_logical);
      words.push_back(e.fe_physical);
      words.push_back(e.fe_length);
      words.push_back(e.fe_flags);
      if (e.fe_flags & FIEMAP_EXTENT_LAST) last = true;
    }
    // Done unless the buffer was full and the last extent is not the file's last.
    if (last || n < capacity) break;
    const struct fiemap_extent& tail = buf.map->fm_extents[n - 1];
    uint64_t next = tail.fe_logical + tail.fe_length;
    if (next <= at || next >= end) break;  // no progress, or the range is covered
    at = next;
  }
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, words.size() * sizeof(uint64_t));
  if (!words.empty()) memcpy(out.Data(), words.data(), words.size() * sizeof(uint64_t));
  return out;
}

}  // namespace

void InitFiemap(Napi::Env env, Napi::Object exports) {
  exports.Set("readFiemap", Napi::Function::New(env, ReadFiemap, "readFiemap"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("FIEMAP_FLAG_SYNC", static_cast<double>(FIEMAP_FLAG_SYNC));
  c.Set("FIEMAP_EXTENT_LAST", static_cast<double>(FIEMAP_EXTENT_LAST));
  c.Set("FIEMAP_EXTENT_UNKNOWN", static_cast<double>(FIEMAP_EXTENT_UNKNOWN));
  c.Set("FIEMAP_EXTENT_DELALLOC", static_cast<double>(FIEMAP_EXTENT_DELALLOC));
  c.Set("FIEMAP_EXTENT_ENCODED", static_cast<double>(FIEMAP_EXTENT_ENCODED));
  c.Set("FIEMAP_EXTENT_NOT_ALIGNED", static_cast<double>(FIEMAP_EXTENT_NOT_ALIGNED));
  c.Set("FIEMAP_EXTENT_DATA_INLINE", static_cast<double>(FIEMAP_EXTENT_DATA_INLINE));
  c.Set("FIEMAP_EXTENT_UNWRITTEN", static_cast<double>(FIEMAP_EXTENT_UNWRITTEN));
  c.Set("FIEMAP_EXTENT_MERGED", static_cast<double>(FIEMAP_EXTENT_MERGED));
  c.Set("FIEMAP_EXTENT_SHARED", static_cast<double>(FIEMAP_EXTENT_SHARED));
  exports.Set("fiemapConstants", c);
}

}  // namespace cowlab
