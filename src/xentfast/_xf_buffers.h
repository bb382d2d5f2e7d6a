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
 * Each buffer is its own mapping (on Linux), 2 MiB-aligned and marked for
 * transparent huge pages before it is touched.  From malloc, a buffer of
 * this size can be heap memory that earlier frees left populated with
 * 4 KiB pages: measured in a KVM guest, log_softmax into such an output
 * (float64, 16384 x 100) took 2.8x as long as into one on huge pages (TLB
 * misses under nested paging), and which one a call got depended on the
 * allocation history.  A header before the data records the mapping, since
 * NumPy's free and realloc do not say how it was made.
 *
 * The lock is only ever tried, never waited for: a thread that finds it
 * held (or a child forked while it was held) just maps and unmaps.
 */
#ifndef XF_BUFFERS_H
#define XF_BUFFERS_H

#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define XF_BUFFERS_SLOTS 4
#define XF_BUFFERS_MIN ((size_t)1 << 20)
#define XF_BUFFERS_BUDGET ((size_t)256 << 20)

/* Bytes before a buffer's data, where its mapping starts: the header (a
 * multiple of 64, so that the data keeps the mapping's cache-line
 * alignment). */
#define XF_BUFFERS_HEADER 64
#define XF_BUFFERS_HUGE ((size_t)2 << 20)

/* The mapping's length, and the bytes of data in use (what realloc copies). */
struct xf_buffer_header { size_t length; size_t size; };

static struct xf_buffer_header *xf_buffers_header(void *ptr)
{
    return (struct xf_buffer_header *)((char *)ptr - XF_BUFFERS_HEADER);
}

/* A new buffer of `size` bytes (zeroed), or NULL. */
static void *xf_buffers_map(size_t size)
{
    if (size > (size_t)-1 - XF_BUFFERS_HEADER - 2 * XF_BUFFERS_HUGE)
        return NULL;
#ifdef __linux__
    size_t length = (size + XF_BUFFERS_HEADER + XF_BUFFERS_HUGE - 1) & ~(XF_BUFFERS_HUGE - 1);
    char *raw = mmap(NULL, length + XF_BUFFERS_HUGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    /* keep the 2 MiB-aligned part (what precedes it is shorter than 2 MiB,
     * so something always follows it) */
    char *start = (char *)(((uintptr_t)raw + XF_BUFFERS_HUGE - 1) & ~(uintptr_t)(XF_BUFFERS_HUGE - 1));
    if (start > raw)
        munmap(raw, (size_t)(start - raw));
    munmap(start + length, (size_t)(raw + XF_BUFFERS_HUGE - start));
#ifdef MADV_HUGEPAGE
    madvise(start, length, MADV_HUGEPAGE);
#endif
#else
    size_t length = size + XF_BUFFERS_HEADER;
    char *start = calloc(1, length);
    if (start == NULL)
        return NULL;
#endif
    struct xf_buffer_header *h = (struct xf_buffer_header *)start;
    h->length = length;
    h->size = size;
    return start + XF_BUFFERS_HEADER;
}

static void xf_buffers_unmap(void *ptr)
{
    if (ptr == NULL)
        return;
#ifdef __linux__
    munmap((char *)ptr - XF_BUFFERS_HEADER, xf_buffers_header(ptr)->length);
#else
    free((char *)ptr - XF_BUFFERS_HEADER);
#endif
}

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
            xf_buffers_unmap(xf_buffers[i].ptr);
            xf_buffers_kept -= xf_buffers[i].size;
            xf_buffers[i].ptr = NULL;
        }
        if (xf_buffers[i].ptr == NULL && slot < 0)
            slot = i;
    }
    if (slot < 0) {   /* all slots full: replace the first */
        xf_buffers_unmap(xf_buffers[0].ptr);
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
    return p != NULL ? p : xf_buffers_map(size);
}

static void *xf_buffers_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    if (elsize != 0 && nelem > (size_t)-1 / elsize)
        return NULL;
    return xf_buffers_map(nelem * elsize);   /* fresh mappings are zero */
}

static void *xf_buffers_realloc(void *ctx, void *ptr, size_t new_size)
{
    (void)ctx;
    if (ptr == NULL)
        return xf_buffers_map(new_size);
    struct xf_buffer_header *h = xf_buffers_header(ptr);
    if (new_size + XF_BUFFERS_HEADER <= h->length) {   /* fits in its mapping */
        h->size = new_size;
        return ptr;
    }
    void *p = xf_buffers_map(new_size);
    if (p != NULL) {
        memcpy(p, ptr, h->size);
        xf_buffers_unmap(ptr);
    }
    return p;
}

static void xf_buffers_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (ptr != NULL && !xf_buffers_keep(ptr, size))
        xf_buffers_unmap(ptr);
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
            xf_buffers_unmap(xf_buffers[i].ptr);
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
