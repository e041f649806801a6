/* The plain C first-touch loop that bench/touch compares r:touch against:
   mmap SIZE bytes (no huge pages), then one access per page, read or write,
   timed around the loop only. Prints: seconds minor_faults */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s read|write BYTES\n", argv[0]);
    return 2;
  }
  int write = strcmp(argv[1], "write") == 0;
  size_t size = strtoull(argv[2], NULL, 10), page = (size_t)sysconf(_SC_PAGESIZE);
  volatile unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return perror("mmap"), 1;
  madvise((void *)p, size, MADV_NOHUGEPAGE);
  struct rusage r0, r1;
  unsigned sink = 0;
  getrusage(RUSAGE_SELF, &r0);
  double t0 = now();
  if (write)
    for (size_t i = 0; i < size; i += page) p[i] = 1;
  else
    for (size_t i = 0; i < size; i += page) sink += p[i];
  double t = now() - t0;
  getrusage(RUSAGE_SELF, &r1);
  printf("%.9f %ld\n", t, r1.ru_minflt - r0.ru_minflt);
  return (int)(sink & 0);
}
