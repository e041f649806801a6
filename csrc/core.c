/*
 * core.c - luaopen_vmlab_core: the module table, filled by each concern
 * file's vmlab_open_<concern>() in turn. Registration only: the helpers the
 * concern files share live in support.c.
 */
#include "vmlab.h"

/* What each concern file registers, in the order they are opened (basics
   first: it reads the page size the others use). */
static void (*const core_concerns[])(lua_State *L) = {
    vmlab_open_basics,      /* page_size, now, sleep, isatty */
    vmlab_open_guard,       /* the fault guard, signal_name */
    vmlab_open_regions,     /* mmap and the Region methods */
    vmlab_open_touch,       /* r:touch and its timeline */
    vmlab_open_frames,      /* pagemap frames */
    vmlab_open_pagecache,   /* file_resident, fadvise */
    vmlab_open_heap,        /* malloc, calloc, r:realloc, mallinfo */
    vmlab_open_process,     /* fork, the Child object, wait, kill */
    vmlab_open_spawn,       /* fork + exec of a program */
    vmlab_open_shm,         /* shm_open, atomics, futex, semaphores */
    vmlab_open_counters,    /* rusage, fault_counter */
    vmlab_open_lab,         /* probes the experiments need */
    vmlab_open_faultsample, /* fault_sampler */
    vmlab_open_sum,         /* the line summer of vmlab sum */
    vmlab_open_ipc,         /* the IPC round-trip and bandwidth loops */
    vmlab_open_blocks,      /* many small allocations */
};

int luaopen_vmlab_core(lua_State *L) {
  lua_newtable(L);
  for (size_t i = 0; i < sizeof core_concerns / sizeof core_concerns[0]; i++) core_concerns[i](L);
  return 1;
}
