// PAGEMAP_SCAN (Linux 6.7, include/uapi/linux/fs.h; older system headers lack it): the ioctl
// on /proc/<pid>/pagemap that reports page categories over a range (and, with a uffd-wp
// async range, which pages were written). Used by pagemap.cc and track_uffd.cc.
#pragma once
#include <sys/ioctl.h>

#include <cstdint>

namespace cowlab {
namespace pagemap_scan {

struct PageRegion {
  uint64_t start, end, categories;
};
struct PmScanArg {
  uint64_t size, flags, start, end, walkEnd, vec, vecLen, maxPages, categoryInverted, categoryMask,
      categoryAnyofMask, returnMask;
};
static_assert(sizeof(PmScanArg) == 96, "struct pm_scan_arg is 96 bytes");
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);

}  // namespace pagemap_scan
}  // namespace cowlab
