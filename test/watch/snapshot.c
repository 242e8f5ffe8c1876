/* A tiny fork-snapshot program for test/watch: maps PAGES pages, writes them all, prints the
 * address, waits for a line on stdin, forks a child that holds the snapshot for CHILD_MS ms, and
 * meanwhile writes the pages named on the command line (one byte each), in two halves 300 ms
 * apart. Then it reaps the child and waits for stdin to close. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) { struct timespec t = { ms / 1000, (ms % 1000) * 1000000L }; nanosleep(&t, NULL); }

int main(int argc, char **argv) {
  long pages = atol(argv[1]), child_ms = atol(argv[2]);
  char *buf = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return 3;
  madvise(buf, pages * 4096, MADV_NOHUGEPAGE);
  memset(buf, 1, pages * 4096);
  printf("%p\n", (void *)buf);
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 4;
  pid_t c = fork();
  if (c == 0) { nap(child_ms); _exit(0); }
  nap(300);
  int n = argc - 3;
  for (int i = 0; i < n; i++) {
    if (i == n / 2) nap(300);
    buf[atol(argv[3 + i]) * 4096] = 2;
  }
  waitpid(c, NULL, 0);
  printf("done\n");
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {}
  return 0;
}
