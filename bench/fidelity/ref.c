/*
 * Plain C reference for bench/fidelity: the same fork-then-write measurement cowlab's fork
 * probe makes, with no Node process around it. Maps and fills PAGES pages of private
 * anonymous memory, forks, and in the child times one 8-byte store per page (in the order
 * given by PATTERN: seq or rand) with clock_gettime(CLOCK_MONOTONIC). Prints one line of JSON:
 * {"p50":..,"p90":..,"p99":..,"max":..,"faults":..,"forkNs":..}.
 *
 * usage: ref PAGES [seq|rand] [SEED]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Same generator as src/util/prng.ts (mulberry32), so rand visits the same order. */
static uint32_t mb_state;
static double mulberry32(void) {
  mb_state += 0x6d2b79f5u;
  uint32_t t = mb_state;
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return (double)((t ^ (t >> 14))) / 4294967296.0;
}

static __attribute__((noinline)) void timed_stores(uint8_t *base, const uint32_t *order, size_t n,
                                                   uint64_t tag, uint64_t *lat) {
  for (size_t i = 0; i < n; i++) {
    volatile uint64_t *p = (volatile uint64_t *)(base + (size_t)order[i] * 4096);
    uint64_t t0 = now_ns();
    __asm__ volatile("" ::: "memory");
    *p = tag + order[i];
    __asm__ volatile("" ::: "memory");
    uint64_t t1 = now_ns();
    lat[i] = t1 - t0;
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static __attribute__((noinline)) void pretouch_stack(void) {
  volatile char buf[128 * 1024];
  for (size_t i = 0; i < sizeof buf; i += 1024) buf[i] = 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PAGES [seq|rand] [SEED]\n", argv[0]);
    return 2;
  }
  size_t pages = strtoul(argv[1], NULL, 10);
  int rand_order = argc > 2 && strcmp(argv[2], "rand") == 0;
  mb_state = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1;

  uint8_t *region = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(region, pages * 4096, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < pages * 4096; i += 4) *(uint32_t *)(region + i) = (uint32_t)(i / 4096) ^ 0x5a5a5a5a;

  /* Results go to a pre-touched shared mapping, as in the probe. */
  size_t res_bytes = (pages * 8 + 64 + 4095) & ~4095ul;
  uint64_t *res = mmap(NULL, res_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memset(res, 0, res_bytes);
  uint32_t *order = malloc(pages * 4);
  for (size_t i = 0; i < pages; i++) order[i] = (uint32_t)i;
  if (rand_order) {
    for (size_t i = pages - 1; i > 0; i--) {
      size_t j = (size_t)(mulberry32() * (double)(i + 1));
      uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
  }

  uint64_t t0 = now_ns();
  pid_t pid = fork();
  uint64_t t1 = now_ns();
  if (pid == 0) {
    pretouch_stack();
    for (size_t i = 0; i < res_bytes; i += 4096) ((volatile char *)res)[i] = 0;
    uint8_t scratch[4 * 4096 + 8];
    uint32_t sorder[4] = {0, 1, 2, 3};
    uint64_t slat[4];
    timed_stores(scratch, sorder, 4, 0, slat); /* fault in the timing code, as the probe does */
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    timed_stores(region, order, pages, 0xc000000000000000ull, res + 1);
    getrusage(RUSAGE_SELF, &b);
    res[0] = (uint64_t)(b.ru_minflt - a.ru_minflt);
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  uint64_t *lat = res + 1;
  qsort(lat, pages, 8, cmp_u64);
  /* nearest-rank percentiles, as simple-statistics' quantileSorted */
#define Q(p) lat[(size_t)((double)pages * (p)) == (double)pages * (p) && pages % 2 == 0 ? (size_t)((double)pages * (p)) : (size_t)((double)pages * (p))]
  size_t i50 = pages / 2, i90 = (size_t)(pages * 0.9), i99 = (size_t)(pages * 0.99);
  printf("{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"max\":%llu,\"faults\":%llu,\"forkNs\":%llu}\n",
         (unsigned long long)lat[i50 > 0 ? i50 - (pages % 2 == 0) : 0], (unsigned long long)lat[i90],
         (unsigned long long)lat[i99 < pages ? i99 : pages - 1], (unsigned long long)lat[pages - 1],
         (unsigned long long)res[0], (unsigned long long)(t1 - t0));
  return 0;
}
