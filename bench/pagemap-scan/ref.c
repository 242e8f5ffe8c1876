/*
 * Plain C reference for bench/pagemap-scan: the same reads cowlab makes to inspect a region
 * (one pread of /proc/PID/pagemap for the range, decoded into per-field arrays; then
 * /proc/kpagecount and /proc/kpageflags for the present PFNs, sorted and coalesced into runs
 * of consecutive PFNs, one pread per run), with no Node around it. Needs root.
 *
 * usage: scan PID ADDRESS PAGES     prints {"ns": elapsed, "present": n, "runs": r}
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pread_full(int fd, void *buf, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
    if (r <= 0) { perror("pread"); exit(1); }
    done += (size_t)r;
  }
}

typedef struct { uint64_t pfn; uint32_t idx; } pfn_idx;
static int cmp(const void *a, const void *b) {
  const pfn_idx *x = a, *y = b;
  return x->pfn < y->pfn ? -1 : x->pfn > y->pfn ? 1 : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Reads one 8-byte entry per PFN of `list` from `path` into out[idx], coalescing runs. */
static size_t read_kpage(const char *path, pfn_idx *list, size_t n, uint64_t *out, uint64_t *tmp) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) { perror(path); exit(1); }
  size_t runs = 0;
  for (size_t i = 0; i < n;) {
    uint64_t first = list[i].pfn, last = first;
    size_t j = i + 1;
    while (j < n && (list[j].pfn == last || list[j].pfn == last + 1)) last = list[j++].pfn;
    size_t count = (size_t)(last - first + 1);
    pread_full(fd, tmp, count * 8, (off_t)(first * 8));
    for (size_t k = i; k < j; k++) out[list[k].idx] = tmp[list[k].pfn - first];
    runs++;
    i = j;
  }
  close(fd);
  return runs;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: %s PID ADDRESS PAGES\n", argv[0]); return 2; }
  uint64_t addr = strtoull(argv[2], NULL, 0);
  size_t pages = strtoul(argv[3], NULL, 10);
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/pagemap", argv[1]);
  uint64_t *raw = malloc(pages * 8), *count = malloc(pages * 8), *flags = malloc(pages * 8), *tmp = malloc(pages * 8);
  double *pfn = malloc(pages * sizeof(double));
  uint8_t *present = malloc(pages), *exclusive = malloc(pages), *file = malloc(pages), *swapped = malloc(pages),
          *soft = malloc(pages), *uffd = malloc(pages), *guard = malloc(pages);
  pfn_idx *list = malloc(pages * sizeof *list);

  uint64_t t0 = now_ns();
  int fd = open(path, O_RDONLY);
  if (fd < 0) { perror(path); return 1; }
  pread_full(fd, raw, pages * 8, (off_t)(addr / 4096 * 8));
  close(fd);
  size_t n = 0;
  for (size_t i = 0; i < pages; i++) {
    uint64_t e = raw[i];
    present[i] = e >> 63; swapped[i] = (e >> 62) & 1; file[i] = (e >> 61) & 1; guard[i] = (e >> 58) & 1;
    uffd[i] = (e >> 57) & 1; exclusive[i] = (e >> 56) & 1; soft[i] = (e >> 55) & 1;
    pfn[i] = present[i] ? (double)(e & ((1ull << 55) - 1)) : 0;
    if (present[i]) list[n++] = (pfn_idx){(uint64_t)pfn[i], (uint32_t)n};
  }
  qsort(list, n, sizeof *list, cmp);
  size_t runs = read_kpage("/proc/kpagecount", list, n, count, tmp);
  read_kpage("/proc/kpageflags", list, n, flags, tmp);
  uint64_t t1 = now_ns();
  printf("{\"ns\":%llu,\"present\":%zu,\"runs\":%zu}\n", (unsigned long long)(t1 - t0), n, runs);
  return 0;
}
