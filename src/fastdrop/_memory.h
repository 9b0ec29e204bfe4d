/* A NumPy memory handler (NEP 49) whose blocks start on a 2 MiB boundary and are marked for
 * transparent huge pages: the outputs fastdrop allocates when they are large (_memory.py).
 *
 * Why: glibc serves a large malloc with a fresh mmap whose start is not 2 MiB aligned, so the
 * kernel can back only the aligned middle with huge pages; the head and tail of the block
 * fault in as 4 KiB pages, about 512 page faults per array whatever its size.  On the 32 MiB
 * output of the family bench those faults cost about 1 ms of a 4 ms call (bench/NOTES.md,
 * "Huge-page outputs").  An aligned block faults in 2 MiB at a time.
 *
 * Linux only (transparent huge pages are a Linux feature): elsewhere there is no handler and
 * outputs come from NumPy's own allocator.  This file is included by the Cython module after
 * numpy/arrayobject.h, which defines PyDataMem_Handler.
 */
#ifndef FASTDROP_MEMORY_H
#define FASTDROP_MEMORY_H

#if defined(__linux__)
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define FD_HUGE_PAGE_BYTES ((size_t)2 << 20)
#define FD_SMALL_PAGE_BYTES ((size_t)4096)

static void *fd_huge_malloc(void *ctx, size_t size)
{
    void *p = NULL;
    (void)ctx;
    if (posix_memalign(&p, FD_HUGE_PAGE_BYTES, size ? size : 1) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    /* Advice only: where THP is off (or the advice is refused) the block is ordinary memory. */
    if (size >= FD_HUGE_PAGE_BYTES)
        (void)madvise(p, size - size % FD_SMALL_PAGE_BYTES, MADV_HUGEPAGE);
#endif
    return p;
}

static void *fd_huge_calloc(void *ctx, size_t nelem, size_t elsize)
{
    void *p;
    if (elsize != 0 && nelem > (size_t)-1 / elsize)
        return NULL;
    p = fd_huge_malloc(ctx, nelem * elsize);
    if (p != NULL)
        memset(p, 0, nelem * elsize);
    return p;
}

/* posix_memalign's blocks are free()'s and realloc()'s to manage; a resized block keeps its
 * contents but not necessarily its alignment (NumPy resizes only on ndarray.resize). */
static void *fd_huge_realloc(void *ctx, void *ptr, size_t new_size)
{
    (void)ctx;
    return realloc(ptr, new_size ? new_size : 1);
}

static void fd_huge_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;
    free(ptr);
}

static PyDataMem_Handler fd_huge_page_handler_data = {
    "fastdrop_huge_pages", 1,
    {NULL, fd_huge_malloc, fd_huge_calloc, fd_huge_realloc, fd_huge_free}
};

static void *fd_huge_page_handler(void) { return &fd_huge_page_handler_data; }
#else
static void *fd_huge_page_handler(void) { return NULL; }
#endif

#endif
