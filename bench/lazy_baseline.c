/* The plain C first-touch loop that bench/lazy compares `vmlab run lazy`
   against: malloc SIZE bytes (as the lazy experiment does), no huge pages,
   then write one byte per page, timed around the loop only.
   Prints: seconds minor_faults */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
  if (argc != 2) {
    fprintf(stderr, "usage: %s BYTES\n", argv[0]);
    return 2;
  }
  size_t size = strtoull(argv[1], NULL, 10), page = (size_t)sysconf(_SC_PAGESIZE);
  volatile unsigned char *p = malloc(size);
  if (p == NULL) return perror("malloc"), 1;
  /* the whole pages inside the block, as r:advise does for a heap block */
  uintptr_t a = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t b = ((uintptr_t)p + size) & ~(uintptr_t)(page - 1);
  if (b > a) madvise((void *)a, b - a, MADV_NOHUGEPAGE);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  double t0 = now();
  for (size_t i = 0; i < size; i += page) p[i] = 1;
  double t = now() - t0;
  getrusage(RUSAGE_SELF, &r1);
  printf("%.9f %ld\n", t, r1.ru_minflt - r0.ru_minflt);
  free((void *)p);
  return 0;
}
