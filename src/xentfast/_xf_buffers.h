/* A NumPy memory handler (NEP 49) that keeps a few large freed buffers for
 * reuse, for the arrays xentfast returns (gradients, log-probabilities).
 *
 * A fresh output of tens of MB costs its first touch in page faults and
 * zeroing by the kernel: measured, a third of a cross-entropy call at
 * 512 x 32000 (2.7 ms per 65 MB on Zen 4, ~4 ms here on Sapphire Rapids).
 * A training loop frees the previous step's gradient before it asks for
 * the next one of the same size, so keeping it (as JAX's and PyTorch's GPU
 * allocators do) skips that cost.  Only buffers of XF_BUFFERS_MIN bytes and
 * more are kept (smaller ones are fast to get from malloc), at most
 * XF_BUFFERS_SLOTS of them and XF_BUFFERS_BUDGET bytes in all; a request
 * takes a kept buffer of exactly its size.
 *
 * The lock is only ever tried, never waited for: a thread that finds it
 * held (or a child forked while it was held) just uses malloc and free.
 */
#ifndef XF_BUFFERS_H
#define XF_BUFFERS_H

#include <stdlib.h>
#include <stdint.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define XF_BUFFERS_SLOTS 4
#define XF_BUFFERS_MIN ((size_t)1 << 20)
#define XF_BUFFERS_BUDGET ((size_t)256 << 20)

static struct { void *ptr; size_t size; } xf_buffers[XF_BUFFERS_SLOTS];
static size_t xf_buffers_kept;   /* bytes in xf_buffers */
static int xf_buffers_lock;

static int xf_buffers_try_lock(void)
{
    return __atomic_exchange_n(&xf_buffers_lock, 1, __ATOMIC_ACQUIRE) == 0;
}

static void xf_buffers_unlock(void)
{
    __atomic_store_n(&xf_buffers_lock, 0, __ATOMIC_RELEASE);
}

/* A kept buffer of exactly `size` bytes, or NULL. */
static void *xf_buffers_take(size_t size)
{
    void *p = NULL;
    if (size < XF_BUFFERS_MIN || !xf_buffers_try_lock())
        return NULL;
    for (int i = 0; i < XF_BUFFERS_SLOTS && p == NULL; i++) {
        if (xf_buffers[i].ptr != NULL && xf_buffers[i].size == size) {
            p = xf_buffers[i].ptr;
            xf_buffers[i].ptr = NULL;
            xf_buffers_kept -= size;
        }
    }
    xf_buffers_unlock();
    return p;
}

/* Keeps `ptr` (of `size` bytes) for reuse, making room by freeing the
 * other kept buffers if needed; 0 if it cannot be kept. */
static int xf_buffers_keep(void *ptr, size_t size)
{
    if (size < XF_BUFFERS_MIN || size > XF_BUFFERS_BUDGET || !xf_buffers_try_lock())
        return 0;
    int slot = -1;
    for (int i = 0; i < XF_BUFFERS_SLOTS; i++) {
        if (xf_buffers[i].ptr != NULL && xf_buffers_kept + size > XF_BUFFERS_BUDGET) {
            free(xf_buffers[i].ptr);
            xf_buffers_kept -= xf_buffers[i].size;
            xf_buffers[i].ptr = NULL;
        }
        if (xf_buffers[i].ptr == NULL && slot < 0)
            slot = i;
    }
    if (slot < 0) {   /* all slots full: replace the first */
        free(xf_buffers[0].ptr);
        xf_buffers_kept -= xf_buffers[0].size;
        slot = 0;
    }
    xf_buffers[slot].ptr = ptr;
    xf_buffers[slot].size = size;
    xf_buffers_kept += size;
    xf_buffers_unlock();
    return 1;
}

static void *xf_buffers_malloc(void *ctx, size_t size)
{
    (void)ctx;
    void *p = xf_buffers_take(size);
    if (p != NULL)
        return p;
    p = malloc(size);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* as NumPy's own handler: huge pages for large arrays, fewer faults */
    if (p != NULL && size >= ((size_t)4 << 20)) {
        uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
        uintptr_t end = ((uintptr_t)p + size) & ~(uintptr_t)4095;
        if (end > start)
            madvise((void *)start, end - start, MADV_HUGEPAGE);
    }
#endif
    return p;
}

static void *xf_buffers_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return calloc(nelem, elsize);
}

static void *xf_buffers_realloc(void *ctx, void *ptr, size_t new_size)
{
    (void)ctx;
    return realloc(ptr, new_size);
}

static void xf_buffers_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (ptr == NULL || !xf_buffers_keep(ptr, size))
        free(ptr);
}

/* Frees every kept buffer (for tests, and a process that wants its memory
 * back); returns the bytes freed. */
static size_t xf_buffers_release(void)
{
    size_t freed = 0;
    if (!xf_buffers_try_lock())
        return 0;
    for (int i = 0; i < XF_BUFFERS_SLOTS; i++) {
        if (xf_buffers[i].ptr != NULL) {
            free(xf_buffers[i].ptr);
            freed += xf_buffers[i].size;
            xf_buffers[i].ptr = NULL;
        }
    }
    xf_buffers_kept = 0;
    xf_buffers_unlock();
    return freed;
}

static size_t xf_buffers_bytes_kept(void)
{
    return __atomic_load_n(&xf_buffers_kept, __ATOMIC_RELAXED);
}

/* The handler, for PyDataMem_SetHandler (NumPy's headers come first). */
static PyDataMem_Handler xf_buffers_handler = {
    "xentfast_reused_buffers",
    1,
    {NULL, xf_buffers_malloc, xf_buffers_calloc, xf_buffers_realloc, xf_buffers_free},
};

#endif
