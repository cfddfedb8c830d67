/* simt_runtime.h -- the scheduler and the launcher of the SIMT emulator (simt.h); included
 * once, after the kernel source, by the translation unit tests/simt.py generates:
 *
 *   #include "simt.h"
 *   #include "<kernel>.cu"
 *   #define PP_SIMT_KERNELS X(name1) X(name2) ...
 *   #include "simt_runtime.h"
 *
 * Exported: pp_simt_launch(name, argv, nargs, grid, block, dynamic_shared) runs kernel
 * `name` on `grid` blocks of `block` threads, its arguments given as 64-bit words in
 * parameter order (pointers as addresses, integers by value), and returns NULL or the
 * first error (a deadlock, a warp operation with exited lanes, too much shared memory). */
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define PP_SIMT_DYNAMIC_SMEM (256u * 1024u)
#define PP_SIMT_STACK (64u * 1024u)

thread_local pp_simt_block *pp_simt_blk = nullptr;
/* dynamic shared memory (extern __shared__ int32_t pp_tile_acc[] in the kernels) */
thread_local __align__(16) int32_t pp_tile_acc[PP_SIMT_DYNAMIC_SMEM / 4];

static std::mutex pp_simt_mu;
static std::condition_variable pp_simt_cv;
static unsigned int pp_simt_grid_waiting, pp_simt_grid_blocks;
static unsigned long long pp_simt_grid_gen;
static std::string pp_simt_error;
/* The order the scheduler tries a block's fibers in each pass: 0 by thread index, 1
 * reversed, 2 a fresh pseudo-random permutation every pass (seeded).  Code between two
 * synchronisation points runs without interruption, so a missing __syncthreads shows
 * only when a reader runs before the writer: the other orders make that happen. */
static int pp_simt_order_mode = 0;
static unsigned int pp_simt_order_seed = 1;

extern "C" void pp_simt_set_order(int mode, unsigned int seed)
{
    pp_simt_order_mode = mode;
    pp_simt_order_seed = seed;
}

void pp_simt_fail(const char *why)
{
    std::lock_guard<std::mutex> g(pp_simt_mu);
    if (pp_simt_error.empty()) pp_simt_error = why;
}

long long clock64()
{
    return (long long)std::chrono::steady_clock::now().time_since_epoch().count();
}

/* The blocks meet (called by the last fiber of a block to arrive; blocks whose fibers
 * have all finished have left the count). */
static void pp_simt_blocks_meet()
{
    std::unique_lock<std::mutex> g(pp_simt_mu);
    const unsigned long long gen = pp_simt_grid_gen;
    if (++pp_simt_grid_waiting == pp_simt_grid_blocks) {
        pp_simt_grid_waiting = 0;
        ++pp_simt_grid_gen;
        pp_simt_cv.notify_all();
        return;
    }
    if (!pp_simt_cv.wait_for(g, std::chrono::seconds(120), [gen] { return pp_simt_grid_gen != gen; })) {
        if (pp_simt_error.empty()) pp_simt_error = "grid barrier: a block never arrived (deadlock)";
        ++pp_simt_grid_gen;                  /* let everyone go: the results are void */
        pp_simt_grid_waiting = 0;
        pp_simt_cv.notify_all();
    }
}

static void pp_simt_block_leaves()
{
    std::lock_guard<std::mutex> g(pp_simt_mu);
    --pp_simt_grid_blocks;
    if (pp_simt_grid_blocks && pp_simt_grid_waiting == pp_simt_grid_blocks) {
        pp_simt_grid_waiting = 0;
        ++pp_simt_grid_gen;
        pp_simt_cv.notify_all();
    }
}

void pp_simt_grid_sync()
{
    pp_simt_block *b = pp_simt_blk;
    b->cur->state = PP_SIMT_WAIT_GRID;
    if (++b->grid_arrived == b->alive) {
        b->grid_arrived = 0;
        pp_simt_blocks_meet();
        pp_simt_release(b, PP_SIMT_WAIT_GRID, -1);
    }
    pp_simt_yield();
}

/* ---- arguments from 64-bit words ------------------------------------------------------- */
template <class T> static T pp_simt_arg(uint64_t v)
{
    if constexpr (std::is_pointer_v<T>) return reinterpret_cast<T>((uintptr_t)v);
    else return static_cast<T>(v);
}

template <class... A, size_t... I>
static void pp_simt_call(void (*k)(A...), const uint64_t *argv, std::index_sequence<I...>)
{
    k(pp_simt_arg<A>(argv[I])...);
}

template <class... A> constexpr int pp_simt_arity(void (*)(A...)) { return (int)sizeof...(A); }

struct pp_simt_launch_args {
    void (*thunk)(const void *kernel, const uint64_t *argv);
    const void *kernel;
    const uint64_t *argv;
};

static thread_local const pp_simt_launch_args *pp_simt_cur_launch;

static void pp_simt_fiber_entry()
{
    pp_simt_block *b = pp_simt_blk;
    const pp_simt_launch_args *L = pp_simt_cur_launch;
    L->thunk(L->kernel, L->argv);
    b->cur->state = PP_SIMT_DONE;         /* uc_link returns to the scheduler */
}

static void pp_simt_run_block(unsigned int bi, unsigned int grid, unsigned int block,
                              const pp_simt_launch_args *L)
{
    pp_simt_block B;
    std::memset((void *)&B, 0, sizeof B);
    B.block_idx = bi; B.grid_dim = grid; B.block_dim = block;
    std::vector<pp_simt_fiber> fibers(block);
    B.fibers = fibers.data();
    B.alive = block;
    for (unsigned int w = 0; w < (block + 31u) / 32u; ++w)
        B.warp_alive[w] = (w + 1u) * 32u <= block ? 32u : block - w * 32u;
    pp_simt_blk = &B;
    pp_simt_cur_launch = L;
    for (unsigned int i = 0; i < block; ++i) {
        pp_simt_fiber *f = &fibers[i];
        f->tid = i;
        f->state = PP_SIMT_RUN;
        f->stack = std::malloc(PP_SIMT_STACK);
        getcontext(&f->ctx);
        f->ctx.uc_stack.ss_sp = f->stack;
        f->ctx.uc_stack.ss_size = PP_SIMT_STACK;
        f->ctx.uc_link = &B.sched;
        makecontext(&f->ctx, (void (*)())pp_simt_fiber_entry, 0);
    }
    std::vector<unsigned int> order(block);
    uint64_t rng = 0x9E3779B97F4A7C15ull * (pp_simt_order_seed + 1u) + bi;
    for (;;) {
        bool ran = false, done = true;
        for (unsigned int i = 0; i < block; ++i)
            order[i] = pp_simt_order_mode == 1 ? block - 1u - i : i;
        if (pp_simt_order_mode == 2) {
            for (unsigned int i = block - 1u; i > 0u; --i) {     /* Fisher-Yates, xorshift64 */
                rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
                const unsigned int j = (unsigned int)(rng % (i + 1u));
                const unsigned int tmp = order[i]; order[i] = order[j]; order[j] = tmp;
            }
        }
        for (unsigned int oi = 0; oi < block; ++oi) {
            const unsigned int i = order[oi];
            pp_simt_fiber *f = &fibers[i];
            if (f->state == PP_SIMT_RUN) {
                B.cur = f;
                swapcontext(&B.sched, &f->ctx);
                ran = true;
                if (f->state == PP_SIMT_DONE) {           /* the fiber left the kernel */
                    const unsigned int w = i / 32u;
                    --B.alive;
                    --B.warp_alive[w];
                    if (B.alive && B.block_arrived == B.alive) {
                        B.block_arrived = 0;
                        pp_simt_release(&B, PP_SIMT_WAIT_BLOCK, -1);
                    }
                    if (B.warp_alive[w] && B.warp_arrived[w] == B.warp_alive[w]) {
                        B.warp_arrived[w] = 0;
                        pp_simt_release(&B, PP_SIMT_WAIT_WARP, (int)w);
                    }
                    if (B.alive && B.grid_arrived == B.alive) {
                        B.grid_arrived = 0;
                        pp_simt_blocks_meet();
                        pp_simt_release(&B, PP_SIMT_WAIT_GRID, -1);
                    }
                }
            }
            if (f->state != PP_SIMT_DONE) done = false;
        }
        if (done) break;
        if (!ran) {
            char msg[160];
            unsigned int n[5] = {0, 0, 0, 0, 0};
            for (unsigned int i = 0; i < block; ++i) ++n[fibers[i].state];
            std::snprintf(msg, sizeof msg, "deadlock in block %u: %u at __syncthreads, %u at a "
                          "warp operation, %u at the grid barrier, %u done", bi,
                          n[PP_SIMT_WAIT_BLOCK], n[PP_SIMT_WAIT_WARP], n[PP_SIMT_WAIT_GRID],
                          n[PP_SIMT_DONE]);
            pp_simt_fail(msg);
            break;                               /* the fibers' stacks are leaked */
        }
    }
    pp_simt_block_leaves();
    for (unsigned int i = 0; i < block; ++i)
        if (fibers[i].state == PP_SIMT_DONE) std::free(fibers[i].stack);
    pp_simt_blk = nullptr;
}

#define X(name)                                                                             \
    static void pp_simt_thunk_##name(const void *, const uint64_t *argv)                      \
    {                                                                                         \
        pp_simt_call(&name, argv,                                                             \
                     std::make_index_sequence<(size_t)pp_simt_arity(&name)>());               \
    }
PP_SIMT_KERNELS
#undef X

extern "C" const char *pp_simt_launch(const char *name, const uint64_t *argv, int nargs,
                                      unsigned int grid, unsigned int block,
                                      unsigned long long dynamic_shared)
{
    static std::string err;
    pp_simt_launch_args L{nullptr, nullptr, argv};
#define X(kname)                                                                            \
    if (std::strcmp(name, #kname) == 0) {                                                     \
        if (nargs != pp_simt_arity(&kname)) {                                                 \
            err = std::string(#kname ": ") + std::to_string(nargs) + " arguments given, " +   \
                  std::to_string(pp_simt_arity(&kname)) + " expected";                        \
            return err.c_str();                                                               \
        }                                                                                     \
        L.thunk = pp_simt_thunk_##kname;                                                      \
    }
    PP_SIMT_KERNELS
#undef X
    if (!L.thunk) { err = std::string("no kernel ") + name; return err.c_str(); }
    if (block == 0 || block > PP_SIMT_MAX_THREADS) {
        err = "block size must be 1 to 1024 threads"; return err.c_str();
    }
    if (dynamic_shared > PP_SIMT_DYNAMIC_SMEM) {
        err = "dynamic shared memory above the emulator's 256 KiB"; return err.c_str();
    }
    pp_simt_error.clear();
    pp_simt_grid_waiting = 0;
    pp_simt_grid_blocks = grid;
    std::vector<std::thread> th;
    for (unsigned int b = 0; b < grid; ++b) th.emplace_back(pp_simt_run_block, b, grid, block, &L);
    for (auto &t : th) t.join();
    if (pp_simt_error.empty()) return nullptr;
    err = pp_simt_error;
    return err.c_str();
}
