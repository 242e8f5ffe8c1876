/*
 * Plain C reference for bench/region-snapshot: the kernel's fork() of a process holding PAGES
 * pages of populated private anonymous memory (4 KiB pages, MADV_NOHUGEPAGE). Times the
 * fork() call in the parent; the child exits at once. Prints {"forkNs":..}.
 *
 * usage: ref PAGES
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: ref PAGES\n");
    return 2;
  }
  size_t pages = strtoull(argv[1], NULL, 10);
  size_t bytes = pages * 4096;
  uint8_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  madvise(m, bytes, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < bytes; i += 4096) m[i] = (uint8_t)(i >> 12);
  uint64_t t0 = now_ns();
  pid_t pid = fork();
  uint64_t t1 = now_ns();
  if (pid == 0) _exit(0);
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  int status;
  waitpid(pid, &status, 0);
  printf("{\"forkNs\":%llu}\n", (unsigned long long)(t1 - t0));
  return 0;
}
