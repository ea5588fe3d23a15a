// The CPU kernel of ``mmboat::cluster_order`` (mmboat._ext): FSLA's
// balanced hierarchical clustering, every level of a clustering in one call.
//
// It computes what the op's torch body (``_cluster`` in
// mmboat/ops/cluster_order.py) computes, with the same formulas (no
// -ffast-math, no FMA contraction), and sorts the same way: a stable
// ascending sort of the split ratios, equal ratios (-0.0 == 0.0) in their
// current order, NaNs last. Every token's products are computed the same way
// wherever it sits, so equal tokens get equal ratios and keep their order, as
// in the torch body. What differs is the order of the additions inside sums
// and products (the torch body's are BLAS's) and exp (Cephes' polynomials
// here, within about an ulp): float64 orders are identical, float32 orders
// differ where two ratios are within float32 rounding of each other.
//
// Layout rule (mmboat/ops/cluster_layout.py): ``L`` levels (given), leaves of
// ``m = ceil(N / 2**L)`` slots, ``Np = m * 2**L`` slots in all. A group of
// ``n`` real tokens keeps them in its first ``n`` slots; its split gives the
// first ``ceil(n / 2)`` sorted tokens to the first child and the others to
// the second, each child's real tokens first, except at the last level,
// where the padding slots of the first (even) leaf come first. Padding
// slots hold -1 in the output.
//
// Threads (at::parallel_for) take the B rows of x (one clustering each) one
// by one; with few rows, the top levels of each row, then the subtrees below.
// The products use GCC vector types of 32 bytes; with GCC on x86-64 the
// kernel is compiled twice (x86-64 and AVX2, picked at load time) with the
// same arithmetic, so both give the same bits.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MMBOAT_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MMBOAT_TARGET_CLONES
#endif
#define MMBOAT_INLINE inline __attribute__((always_inline))

namespace {

// ------------------------------------------------------------ vector maths

template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(32)));
  static constexpr int kLanes = 8;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(32)));
  static constexpr int kLanes = 4;
};

template <typename T>
MMBOAT_INLINE typename Simd<T>::V load(const T* p) {
  typename Simd<T>::V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
MMBOAT_INLINE void store(T* p, typename Simd<T>::V v) {
  std::memcpy(p, &v, sizeof(v));
}

// the lanes added in a fixed order
MMBOAT_INLINE float hsum(Simd<float>::V v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}
MMBOAT_INLINE double hsum(Simd<double>::V v) {
  return (v[0] + v[2]) + (v[1] + v[3]);
}

// sum_k a[k] * b[k]: lane-wise over ``d``, then the lanes, then the tail
template <typename T, int NV = 0>
MMBOAT_INLINE T dot(const T* a, const T* b, int64_t d_) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::kLanes;
  V acc = {};
  int64_t k = 0;
  for (; k + W <= d; k += W) {
    acc += load(a + k) * load(b + k);
  }
  T s = hsum(acc);
  for (; k < d; ++k) {
    s += a[k] * b[k];
  }
  return s;
}

// hsum of four vectors at once: the same additions in the same order
MMBOAT_INLINE void hsum4(Simd<float>::V a0, Simd<float>::V a1,
                         Simd<float>::V a2, Simd<float>::V a3, float* out) {
  typedef float V4 __attribute__((vector_size(16)));
  // (v0 + v4, v1 + v5, v2 + v6, v3 + v7) of every row
  const V4 u0 = __builtin_shufflevector(a0, a0, 0, 1, 2, 3) +
                __builtin_shufflevector(a0, a0, 4, 5, 6, 7);
  const V4 u1 = __builtin_shufflevector(a1, a1, 0, 1, 2, 3) +
                __builtin_shufflevector(a1, a1, 4, 5, 6, 7);
  const V4 u2 = __builtin_shufflevector(a2, a2, 0, 1, 2, 3) +
                __builtin_shufflevector(a2, a2, 4, 5, 6, 7);
  const V4 u3 = __builtin_shufflevector(a3, a3, 0, 1, 2, 3) +
                __builtin_shufflevector(a3, a3, 4, 5, 6, 7);
  // (u0 + u2, u1 + u3) of rows 0 and 1, of rows 2 and 3
  const V4 s01 = __builtin_shufflevector(u0, u1, 0, 1, 4, 5) +
                 __builtin_shufflevector(u0, u1, 2, 3, 6, 7);
  const V4 s23 = __builtin_shufflevector(u2, u3, 0, 1, 4, 5) +
                 __builtin_shufflevector(u2, u3, 2, 3, 6, 7);
  const V4 r = __builtin_shufflevector(s01, s23, 0, 2, 4, 6) +
               __builtin_shufflevector(s01, s23, 1, 3, 5, 7);
  std::memcpy(out, &r, sizeof(r));
}

MMBOAT_INLINE void hsum4(Simd<double>::V a0, Simd<double>::V a1,
                         Simd<double>::V a2, Simd<double>::V a3,
                         double* out) {
  typedef double V2 __attribute__((vector_size(16)));
  // (v0 + v2, v1 + v3) of every row
  const V2 u0 = __builtin_shufflevector(a0, a0, 0, 1) +
                __builtin_shufflevector(a0, a0, 2, 3);
  const V2 u1 = __builtin_shufflevector(a1, a1, 0, 1) +
                __builtin_shufflevector(a1, a1, 2, 3);
  const V2 u2 = __builtin_shufflevector(a2, a2, 0, 1) +
                __builtin_shufflevector(a2, a2, 2, 3);
  const V2 u3 = __builtin_shufflevector(a3, a3, 0, 1) +
                __builtin_shufflevector(a3, a3, 2, 3);
  const V2 r01 = __builtin_shufflevector(u0, u1, 0, 2) +
                 __builtin_shufflevector(u0, u1, 1, 3);
  const V2 r23 = __builtin_shufflevector(u2, u3, 0, 2) +
                 __builtin_shufflevector(u2, u3, 1, 3);
  std::memcpy(out, &r01, sizeof(r01));
  std::memcpy(out + 2, &r23, sizeof(r23));
}

// dot(c, row) for four rows (``q``, ``q + d``, ...), the same arithmetic
template <typename T, int NV>
MMBOAT_INLINE void dot4(const T* c, const T* q, int64_t d_, T* out) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::kLanes;
  V a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t k = 0;
  for (; k + W <= d; k += W) {
    const V cv = load(c + k);
    a0 += cv * load(q + k);
    a1 += cv * load(q + d + k);
    a2 += cv * load(q + 2 * d + k);
    a3 += cv * load(q + 3 * d + k);
  }
  hsum4(a0, a1, a2, a3, out);
  for (; k < d; ++k) {
    out[0] += c[k] * q[k];
    out[1] += c[k] * q[d + k];
    out[2] += c[k] * q[2 * d + k];
    out[3] += c[k] * q[3 * d + k];
  }
}

// out[i] = dot(c, q_i) for ``n`` rows
template <typename T, int NV>
MMBOAT_INLINE void dots(const T* c, const T* q, int64_t n, int64_t d_,
                        T* out) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    dot4<T, NV>(c, q + i * d, d, out + i);
  }
  for (; i < n; ++i) {
    out[i] = dot<T, NV>(c, q + i * d, d);
  }
}

// out[k] += sum_i w[i] * q[i * d + k] over ``n`` rows in order (w ==
// nullptr: weights 1), the rows summed in registers first
template <typename T, int NV = 0>
MMBOAT_INLINE void add_rows(const T* q, const T* w, int64_t n, int64_t d_,
                            T* out) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::kLanes;
  int64_t k = 0;
  for (; k + 4 * W <= d; k += 4 * W) {
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t i = 0; i < n; ++i) {
      const T* r = q + i * d + k;
      if (w) {
        const T wi = w[i];
        a0 += wi * load(r);
        a1 += wi * load(r + W);
        a2 += wi * load(r + 2 * W);
        a3 += wi * load(r + 3 * W);
      } else {
        a0 += load(r);
        a1 += load(r + W);
        a2 += load(r + 2 * W);
        a3 += load(r + 3 * W);
      }
    }
    store(out + k, load(out + k) + a0);
    store(out + k + W, load(out + k + W) + a1);
    store(out + k + 2 * W, load(out + k + 2 * W) + a2);
    store(out + k + 3 * W, load(out + k + 3 * W) + a3);
  }
  for (; k + W <= d; k += W) {
    V a = {};
    for (int64_t i = 0; i < n; ++i) {
      a += (w ? w[i] : T(1)) * load(q + i * d + k);
    }
    store(out + k, load(out + k) + a);
  }
  for (; k < d; ++k) {
    T a = 0;
    for (int64_t i = 0; i < n; ++i) {
      a += (w ? w[i] : T(1)) * q[i * d + k];
    }
    out[k] += a;
  }
}

template <typename T, int NV = 0>
MMBOAT_INLINE void copy_row(const T* src, T* dst, int64_t d_) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  constexpr int W = Simd<T>::kLanes;
  int64_t k = 0;
  for (; k + W <= d; k += W) {
    store(dst + k, load(src + k));
  }
  for (; k < d; ++k) {
    dst[k] = src[k];
  }
}

// ``F.normalize(v, dim=-1)``: v / max(||v||, 1e-12)
template <typename T, int NV>
MMBOAT_INLINE void normalize(const T* v, T* out, int64_t d_) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  const T norm =
      std::max(std::sqrt(dot<T, NV>(v, v, d)), static_cast<T>(1e-12));
  for (int64_t k = 0; k < d; ++k) {
    out[k] = v[k] / norm;
  }
}

// exp, vectorised: Cephes' range reduction and polynomials, within about an
// ulp of libm's. Results above the largest finite value are +inf; inputs
// below about -87 (float) / -708 (double) give about 2^-126 / 2^-1022 instead
// of smaller numbers (sigmoid, the one user, reads 1 / (1 + exp) only).
MMBOAT_INLINE Simd<float>::V vexp(Simd<float>::V x0) {
  typedef Simd<float>::V V;
  typedef int32_t I __attribute__((vector_size(32)));
  const V lo = V{} - 87.f, hi = V{} + 88.f;
  const V x = x0 < lo ? lo : (x0 > hi ? hi : x0);
  // n = round(x / ln 2), as a float and as an integer (in the low bits of
  // x / ln 2 + 1.5 * 2^23)
  const V t = x * 1.44269504088896341f + 12582912.f;
  const V n = t - 12582912.f;
  I ni;
  std::memcpy(&ni, &t, sizeof(ni));
  ni -= 0x4B400000;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V y = 1.9875691500e-4f * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.f;
  const I bits = (ni + 127) << 23;  // 2^n
  V scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  y = y * scale;
  const V inf = V{} + std::numeric_limits<float>::infinity();
  return x0 > 88.7228394f ? inf : y;
}

MMBOAT_INLINE Simd<double>::V vexp(Simd<double>::V x0) {
  typedef Simd<double>::V V;
  typedef int64_t I __attribute__((vector_size(32)));
  const V lo = V{} - 708., hi = V{} + 709.;
  const V x = x0 < lo ? lo : (x0 > hi ? hi : x0);
  const V t = x * 1.4426950408889634 + 6755399441055744.;  // 1.5 * 2^52
  const V n = t - 6755399441055744.;
  I ni;
  std::memcpy(&ni, &t, sizeof(ni));
  ni -= 0x4338000000000000ll;
  V r = x - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  const V rr = r * r;
  V p = 1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2;
  p = r * (p * rr + 9.99999999999999999910e-1);
  V q = 3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3;
  q = q * rr + 2.27265548208155028766e-1;
  q = q * rr + 2.00000000000000000009e0;
  V y = 1. + 2. * (p / (q - p));
  const I bits = (ni + 1023) << 52;
  V scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  y = y * scale;
  const V inf = V{} + std::numeric_limits<double>::infinity();
  return x0 > 709.782712893384 ? inf : y;
}

// sigmoid, as torch computes it: 1 / (1 + exp(-s)), every element the same
// way (the tail through a padded vector)
template <typename T>
MMBOAT_INLINE void sigmoid(T* s, int64_t n) {
  constexpr int W = Simd<T>::kLanes;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    store(s + i, T(1) / (T(1) + vexp(-load(s + i))));
  }
  if (i < n) {
    T tail[W] = {};
    std::copy(s + i, s + n, tail);
    store(tail, T(1) / (T(1) + vexp(-load(tail))));
    std::copy(tail, tail + (n - i), s + i);
  }
}

// ------------------------------------------------------------ the sort

template <typename T>
using KeyOf = typename std::conditional<std::is_same<T, float>::value,
                                        uint32_t, uint64_t>::type;

// Sort keys whose unsigned order is the float order, -0.0 equal to 0.0 and
// every NaN equal to every other NaN and above +inf.
MMBOAT_INLINE uint32_t sort_key(float v) {
  if (std::isnan(v)) {
    return std::numeric_limits<uint32_t>::max();
  }
  v = v == 0.f ? 0.f : v;  // -0.0 -> 0.0
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

MMBOAT_INLINE uint64_t sort_key(double v) {
  if (std::isnan(v)) {
    return std::numeric_limits<uint64_t>::max();
  }
  v = v == 0. ? 0. : v;
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return (bits & 0x8000000000000000ull) ? ~bits
                                         : (bits | 0x8000000000000000ull);
}

// What is sorted: the key above the position, ``(key << 32) | i`` (float)
// or ``(key << 64) | i`` (double), so that sorting entries is a stable sort
// of the keys.
template <typename T>
using EntryOf = typename std::conditional<std::is_same<T, float>::value,
                                          uint64_t, unsigned __int128>::type;

// One LSD radix pass per ``D``-bit digit of the key, skipping the digits
// that every key shares; stable by construction. Returns where the sorted
// entries are: ``entries`` or ``buf``.
template <int D, typename Entry>
Entry* radix_sort(Entry* entries, int64_t n, Entry* buf,
                  std::vector<int32_t>& counts) {
  constexpr int kKeyBits = sizeof(Entry) * 4;
  constexpr int kPasses = (kKeyBits + D - 1) / D;
  constexpr int kBuckets = 1 << D;
  counts.assign(kPasses * kBuckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const Entry e = entries[i];
    for (int p = 0; p < kPasses; ++p) {
      ++counts[p * kBuckets + ((e >> (kKeyBits + D * p)) & (kBuckets - 1))];
    }
  }
  Entry* src = entries;
  Entry* dst = buf;
  for (int p = 0; p < kPasses; ++p) {
    int32_t* c = counts.data() + p * kBuckets;
    const int shift = kKeyBits + D * p;
    if (c[(src[0] >> shift) & (kBuckets - 1)] == n) {
      continue;  // every key has this digit
    }
    int32_t offset = 0;
    for (int v = 0; v < kBuckets; ++v) {
      const int32_t here = c[v];
      c[v] = offset;
      offset += here;
    }
    for (int64_t i = 0; i < n; ++i) {
      const Entry e = src[i];
      dst[c[(e >> shift) & (kBuckets - 1)]++] = e;
    }
    std::swap(src, dst);
  }
  return src;
}

// Stable argsort of ``n`` keys: ``rank_to_slot[r]`` is the position of the
// r-th smallest key, equal keys in their order: a comparison sort of the
// entries for short groups, a radix sort for long ones.
template <typename Key, typename Entry>
void stable_argsort(const Key* keys, int64_t n, int32_t* rank_to_slot,
                    std::vector<Entry>& buf, std::vector<int32_t>& counts) {
  constexpr int kKeyBits = sizeof(Entry) * 4;
  buf.resize(2 * n);
  Entry* entries = buf.data();
  for (int64_t i = 0; i < n; ++i) {
    entries[i] = (Entry(keys[i]) << kKeyBits) | Entry(uint32_t(i));
  }
  const Entry* sorted = entries;
  // radix from 96 keys on: 1.3 instead of 1.8 ms for 96 x 196 rows, 4.5
  // instead of 6 ms for 48 x 784, 26 instead of 29 ms for 6 x 16,000 (one
  // thread; the same order, as both sorts are stable)
  if (n < 96) {
    std::sort(entries, entries + n);
  } else if (n < 1536) {
    sorted = radix_sort<8>(entries, n, entries + n, counts);
  } else {
    sorted = radix_sort<11>(entries, n, entries + n, counts);
  }
  for (int64_t i = 0; i < n; ++i) {
    rank_to_slot[i] = static_cast<int32_t>(uint32_t(sorted[i]));
  }
}

// ------------------------------------------------------------ the clustering

// Rows handled together: a block of queries stays in the cache from the
// products to the sums that use them.
constexpr int64_t kBlock = 128;
// rows ahead of the reorder's copy that are fetched into the cache
constexpr int64_t kPrefetch = 16;

// The buffers of one clustering (one row of x), by level parity: level l
// reads ``[l % 2]`` and writes ``[(l + 1) % 2]`` (level 0 reads x and
// computes its norms; its order is the identity). Threads that work on
// different subtrees of one clustering share it: each writes the slots and
// groups of its own subtree only.
// An array left uninitialised (what reads it writes it first), 64-byte
// aligned. It only grows, and the buffers are kept from call to call
// (``thread_scratch``, ``SharedTrees``): allocating them afresh cost more
// than the top levels of a large clustering (page faults; with huge pages,
// 30 to 95 ms instead of 25 for the top levels of 3 x 64,000 rows, 2
// threads).
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data_); }

  void resize(int64_t n) {
    if (n <= size_) {
      return;
    }
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    const size_t bytes = (std::max<size_t>(n * sizeof(T), 64) + 63) / 64 * 64;
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes) != 0) {
      throw std::bad_alloc();
    }
    data_ = static_cast<T*>(p);
    size_ = n;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }

 private:
  T* data_ = nullptr;
  int64_t size_ = 0;
};

template <typename T>
struct Tree {
  Buffer<T> feats[2], inv_norm[2];
  Buffer<int64_t> order[2];
  // per group: its real rows and the sums of its first ceil(n / 2) real
  // rows and of the others, at the index of its first leaf (distinct in
  // the subtrees that threads share out)
  Buffer<int64_t> counts[2];
  Buffer<T> first_sums[2], rest_sums[2];

  // sizes for ``Np`` slots of ``d`` features and ``leaves`` groups, and
  // level 0: the norms, the group's real rows and its halves' sums
  void init(const T* x, int64_t N, int64_t d, int64_t Np, int64_t leaves) {
    for (int p = 0; p < 2; ++p) {
      feats[p].resize(Np * d);
      inv_norm[p].resize(Np);
      order[p].resize(Np);
      counts[p].resize(leaves);
      first_sums[p].resize(leaves * d);
      rest_sums[p].resize(leaves * d);
    }
    // 1 / max(||x||, 1e-12)
    for (int64_t i = 0; i < N; ++i) {
      const T* q = x + i * d;
      inv_norm[0][i] =
          T(1) / std::max(std::sqrt(dot(q, q, d)), static_cast<T>(1e-12));
    }
    counts[0][0] = N;
    const int64_t first = (N + 1) / 2;
    std::fill_n(first_sums[0].data(), d, T(0));
    std::fill_n(rest_sums[0].data(), d, T(0));
    add_rows(x, static_cast<const T*>(nullptr), first, d,
             first_sums[0].data());
    add_rows(x + first * d, static_cast<const T*>(nullptr), N - first, d,
             rest_sums[0].data());
  }
};

// What one thread needs for one split; kept by each thread from call to
// call (``thread_scratch``).
template <typename T>
struct Scratch {
  std::vector<T> total, first_sum, c1, c2, diff, block_a, block_b;
  Buffer<KeyOf<T>> keys;
  std::vector<EntryOf<T>> sort_buf;
  Buffer<int32_t> rank_to_slot;
  std::vector<int32_t> sort_counts;

  // the thread's clustering when it does whole ones
  Tree<T> tree;

  // sizes for ``d`` features and groups of up to ``Np`` rows
  void reserve(int64_t d, int64_t Np) {
    for (auto* v : {&total, &first_sum, &c1, &c2, &diff}) {
      v->resize(d);
    }
    block_a.resize(kBlock);
    block_b.resize(kBlock);
    keys.resize(Np);
    rank_to_slot.resize(Np);
  }
};

// This thread's Scratch, sized for ``d`` and ``Np``.
template <typename T>
Scratch<T>& thread_scratch(int64_t d, int64_t Np) {
  thread_local Scratch<T> scratch;
  scratch.reserve(d, Np);
  return scratch;
}

// One split of a group whose ``n`` real rows ``q`` (reciprocal norms
// ``inv``) come first; ``first_half`` and ``rest`` are the sums of its first
// ceil(n / 2) rows and of the others. Writes the stable ascending order of
// the split ratios to ``rank_to_slot``.
template <typename T, int NV>
MMBOAT_INLINE void split_group(const T* q, const T* inv, int64_t n, int64_t d_,
                               const T* first_half, const T* rest,
                               int64_t num_iters, T temperature, bool padded,
                               Scratch<T>& w, int32_t* rank_to_slot) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  T* total = w.total.data();
  T* first_sum = w.first_sum.data();
  T* c1 = w.c1.data();
  T* c2 = w.c2.data();
  T* diff = w.diff.data();
  T* sa = w.block_a.data();
  T* sb = w.block_b.data();
  for (int64_t k = 0; k < d; ++k) {
    total[k] = first_half[k] + rest[k];
    c2[k] = total[k] - first_half[k];
  }
  // centroids: the means of the two halves (normalising removes the scale)
  normalize<T, NV>(first_half, c1, d);
  normalize<T, NV>(c2, c2, d);
  for (int64_t it = 0; it < num_iters; ++it) {
    // soft assignments: softmax over the two centroids == sigmoid of the
    // cosine difference; the first centroid is their weighted sum
    for (int64_t k = 0; k < d; ++k) {
      diff[k] = c1[k] - c2[k];
      first_sum[k] = T(0);
    }
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
      const int64_t nb = std::min(kBlock, n - i0);
      const T* qb = q + i0 * d;
      dots<T, NV>(diff, qb, nb, d, sa);
      for (int64_t i = 0; i < nb; ++i) {
        sa[i] = sa[i] * (inv[i0 + i] * temperature);
      }
      sigmoid(sa, nb);
      add_rows<T, NV>(qb, sa, nb, d, first_sum);
    }
    for (int64_t k = 0; k < d; ++k) {
      c2[k] = total[k] - first_sum[k];
    }
    normalize<T, NV>(first_sum, c1, d);
    normalize<T, NV>(c2, c2, d);
  }
  // split ratios (cos1 + 1) / (cos2 + 1) and their sort keys; with padding,
  // nan_to_num: NaN and +inf become the largest finite value, -inf the
  // lowest (the padding slots, ranked after every real token, are left out)
  KeyOf<T>* keys = w.keys.data();
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t nb = std::min(kBlock, n - i0);
    const T* qb = q + i0 * d;
    const T* ib = inv + i0;
    dots<T, NV>(c1, qb, nb, d, sa);
    dots<T, NV>(c2, qb, nb, d, sb);
    for (int64_t i = 0; i < nb; ++i) {
      sa[i] = (sa[i] * ib[i] + T(1)) / (sb[i] * ib[i] + T(1));
    }
    for (int64_t i = 0; i < nb; ++i) {
      T r = sa[i];
      if (padded && !std::isfinite(r)) {
        r = r < T(0) ? std::numeric_limits<T>::lowest()
                     : std::numeric_limits<T>::max();
      }
      keys[i0 + i] = sort_key(r);
    }
  }
  stable_argsort(keys, n, rank_to_slot, w.sort_buf, w.sort_counts);
}

// A child's reorder: rows ``base + ranks[j]`` (j < n) of ``feats``,
// ``inv_norm`` and ``order`` (nullptr: the identity) to rows j of ``rows``,
// ``norms`` and ``tokens``; the sums of rows [0, first) and [first, n) to
// ``first_sum`` and ``rest_sum``.
template <typename T>
struct Reorder {
  const T* feats;
  const T* inv_norm;
  const int64_t* order;
  const int32_t* ranks;
  int64_t base, n, first, d;
  T* rows;
  T* norms;
  int64_t* tokens;
  T* first_sum;
  T* rest_sum;
};

// ``Reorder``, the sums in registers for d = NV vectors (NV = 0: any d,
// summed after the copy)
template <typename T, int NV>
MMBOAT_INLINE void reorder_rows(const Reorder<T>& r) {
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::kLanes;
  const int64_t d = r.d;
  V acc[NV > 0 ? NV : 1];
  for (int v = 0; v < NV; ++v) {
    acc[v] = V{};
  }
  for (int64_t j = 0; j < r.n; ++j) {
    const int64_t src = r.base + r.ranks[j];
    if (j + kPrefetch < r.n) {
      const int64_t ahead = r.base + r.ranks[j + kPrefetch];
      for (int64_t k = 0; k < d; k += 64 / sizeof(T)) {
        __builtin_prefetch(r.feats + ahead * d + k);
      }
      __builtin_prefetch(r.inv_norm + ahead);
      if (r.order) {
        __builtin_prefetch(r.order + ahead);
      }
    }
    if (NV > 0) {
      if (j == r.first) {  // the first half is summed
        for (int v = 0; v < NV; ++v) {
          store(r.first_sum + v * W, acc[v]);
          acc[v] = V{};
        }
      }
      for (int v = 0; v < NV; ++v) {
        const V row = load(r.feats + src * d + v * W);
        store(r.rows + j * d + v * W, row);
        acc[v] += row;
      }
    } else {
      copy_row(r.feats + src * d, r.rows + j * d, d);
    }
    r.norms[j] = r.inv_norm[src];
    r.tokens[j] = r.order ? r.order[src] : src;
  }
  if (NV > 0) {
    T* last = r.n > r.first ? r.rest_sum : r.first_sum;
    for (int v = 0; v < NV; ++v) {
      store(last + v * W, acc[v]);
    }
    if (r.n <= r.first) {
      std::fill_n(r.rest_sum, d, T(0));
    }
    if (r.first == 0) {
      std::fill_n(r.first_sum, d, T(0));
    }
  } else {
    std::fill_n(r.first_sum, d, T(0));
    std::fill_n(r.rest_sum, d, T(0));
    add_rows(r.rows, static_cast<const T*>(nullptr), r.first, d, r.first_sum);
    add_rows(r.rows + r.first * d, static_cast<const T*>(nullptr),
             r.n - r.first, d, r.rest_sum);
  }
}

// Levels ``[level_begin, level_end)`` of the subtree rooted at group
// ``root`` of ``level_begin``, of the clustering of ``x`` (N, d) held by
// ``t``; the last level (``L - 1``) writes the token of every slot of the
// subtree to ``out`` (Np slots, -1: padding).
template <typename T, int NV>
MMBOAT_TARGET_CLONES void run_levels(const T* x, Tree<T>& t, int64_t N,
                                     int64_t d_, int64_t L, int64_t m,
                                     int64_t level_begin, int64_t level_end,
                                     int64_t root, int64_t num_iters,
                                     T temperature, Scratch<T>& w,
                                     int64_t* out) {
  const int64_t d = NV ? NV * Simd<T>::kLanes : d_;
  const int64_t Np = m << L;
  const bool padded = Np > N;
  for (int64_t level = level_begin; level < level_end; ++level) {
    const int cur = level & 1, nxt = cur ^ 1;
    const int64_t Tn = Np >> level;
    const int64_t half = Tn / 2;
    const bool last = level + 1 == L;
    const T* feats = level == 0 ? x : t.feats[cur].data();  // rows [0, n)
    const T* inv_norm = t.inv_norm[cur].data();
    const int64_t* order = t.order[cur].data();
    const int64_t span = int64_t(1) << (level - level_begin);
    for (int64_t g = root * span; g < (root + 1) * span; ++g) {
      const int64_t leaf = g << (L - level);  // where its sums are
      const int64_t n = t.counts[cur][leaf];  // real rows: slots [0, n)
      const int64_t base = g * Tn;
      int32_t* rank_to_slot = w.rank_to_slot.data();
      split_group<T, NV>(feats + base * d, inv_norm + base, n, d,
                  t.first_sums[cur].data() + leaf * d,
                  t.rest_sums[cur].data() + leaf * d, num_iters, temperature,
                  padded, w, rank_to_slot);
      // the first ceil(n / 2) sorted tokens go to the first child, the
      // others to the second, in their sorted order, at the start of the
      // child's slots, but for the first child at the last level, whose
      // padding slots come first
      const int64_t first = (n + 1) / 2;
      for (int64_t c = 0; c < 2; ++c) {
        const int64_t nc = c == 0 ? first : n - first;
        const int32_t* ranks = rank_to_slot + (c == 0 ? 0 : first);
        const int64_t child = base + c * half;
        const int64_t start = child + (last && c == 0 ? half - nc : 0);
        if (last) {
          std::fill_n(out + child, half, int64_t(-1));
          for (int64_t j = 0; j < nc; ++j) {
            const int64_t src = base + ranks[j];
            out[start + j] = level == 0 ? src : order[src];
          }
          continue;
        }
        // the child's rows, norms and tokens, and the sums of its halves
        // for the next level
        const int64_t cg = (2 * g + c) << (L - level - 1);  // first leaf
        Reorder<T> r{feats,
                     inv_norm,
                     level == 0 ? nullptr : order,
                     ranks,
                     base,
                     nc,
                     (nc + 1) / 2,
                     d,
                     t.feats[nxt].data() + start * d,
                     t.inv_norm[nxt].data() + start,
                     t.order[nxt].data() + start,
                     t.first_sums[nxt].data() + cg * d,
                     t.rest_sums[nxt].data() + cg * d};
        reorder_rows<T, NV>(r);
        t.counts[nxt][cg] = nc;
      }
    }
  }
}

// ``body(u, scratch)`` for every ``u`` in [0, units), on the threads of
// at::parallel_for, each taking the next unit when done with one (so that a
// thread that the system holds back holds nothing else back); one thread
// for ``units * unit_work`` below about 2^16 multiply-adds.
template <typename T, typename F>
void for_each_unit(int64_t units, int64_t unit_work, int64_t d, int64_t Np,
                   const F& body) {
  int64_t threads = std::min<int64_t>(at::get_num_threads(), units);
  if (units * unit_work < (int64_t(1) << 16)) {
    threads = 1;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    Scratch<T>& w = thread_scratch<T>(d, Np);
    for (int64_t u = next++; u < units; u = next++) {
      body(u, w);
    }
  });
}

// The clusterings that threads share out (their subtrees), taken from a
// pool that keeps them from call to call (calls from several Python threads
// each take their own).
template <typename T>
struct SharedTrees {
  std::vector<std::unique_ptr<Tree<T>>> trees;

  explicit SharedTrees(int64_t n) {
    std::lock_guard<std::mutex> lock(mutex());
    auto& free = pool();
    for (int64_t i = 0; i < n; ++i) {
      if (free.empty()) {
        trees.emplace_back(new Tree<T>());
      } else {
        trees.push_back(std::move(free.back()));
        free.pop_back();
      }
    }
  }
  ~SharedTrees() {
    std::lock_guard<std::mutex> lock(mutex());
    for (auto& t : trees) {
      pool().push_back(std::move(t));
    }
  }
  SharedTrees(const SharedTrees&) = delete;
  SharedTrees& operator=(const SharedTrees&) = delete;

 private:
  static std::vector<std::unique_ptr<Tree<T>>>& pool() {
    static std::vector<std::unique_ptr<Tree<T>>> trees;
    return trees;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
};

// ``NV``: the features are ``NV`` vectors (0: any number of features).
template <typename T, int NV>
void cluster_rows(const at::Tensor& x, int64_t L, int64_t m, int64_t num_iters,
                  double temperature, at::Tensor& out) {
  const int64_t B = x.size(0), N = x.size(1), d = x.size(2);
  const T* xp = x.data_ptr<T>();
  int64_t* op = out.data_ptr<int64_t>();
  const int64_t Np = m << L;
  const int64_t leaves = int64_t(1) << L;
  const T temp = static_cast<T>(temperature);
  const int64_t work = Np * std::max<int64_t>(d, 1) * L;  // per row
  // With fewer rows than about eight per thread, the threads first do the
  // top levels of the rows, row by row, then share out the subtrees below.
  const int64_t threads = at::get_num_threads();
  int64_t top = 0;  // levels done row by row
  while (threads > 1 && top < L && (B << top) < 8 * threads &&
         B * work >= (int64_t(1) << 16)) {
    ++top;
  }
  SharedTrees<T> shared(top == 0 ? 0 : B);
  std::vector<std::unique_ptr<Tree<T>>>& trees = shared.trees;
  for_each_unit<T>(B, work, d, Np, [&](int64_t b, Scratch<T>& w) {
    const T* xb = xp + b * N * d;
    Tree<T>& t = top == 0 ? w.tree : *trees[b];
    t.init(xb, N, d, Np, leaves);
    run_levels<T, NV>(xb, t, N, d, L, m, 0, top == 0 ? L : top, 0, num_iters,
                      temp, w, op + b * Np);
  });
  if (top == 0 || top == L) {
    return;
  }
  const int64_t subtrees = int64_t(1) << top;
  for_each_unit<T>(B * subtrees, work >> top, d, Np,
                   [&](int64_t u, Scratch<T>& w) {
                     const int64_t b = u / subtrees, root = u % subtrees;
                     run_levels<T, NV>(xp + b * N * d, *trees[b], N, d, L, m,
                                       top, L, root, num_iters, temp, w,
                                       op + b * Np);
                   });
}

// cluster_rows with the number of features known to the compiler for the
// head dims of the published models (32) and 64
template <typename T>
void cluster_rows(const at::Tensor& x, int64_t L, int64_t m, int64_t num_iters,
                  double temperature, at::Tensor& out) {
  switch (x.size(2)) {
    case 32:
      return cluster_rows<T, 32 / Simd<T>::kLanes>(x, L, m, num_iters,
                                                   temperature, out);
    case 64:
      return cluster_rows<T, 64 / Simd<T>::kLanes>(x, L, m, num_iters,
                                                   temperature, out);
    default:
      return cluster_rows<T, 0>(x, L, m, num_iters, temperature, out);
  }
}

at::Tensor cluster_order_cpu(const at::Tensor& input, int64_t num_levels,
                             int64_t num_iters, double temperature) {
  TORCH_CHECK(input.dim() == 3, "cluster_order: x must be (B, N, d), got ",
              input.sizes());
  TORCH_CHECK(input.device().is_cpu(), "cluster_order_cpu: x must be on CPU");
  TORCH_CHECK(num_levels >= 0 && num_levels < 31,
              "cluster_order: bad number of levels ", num_levels);
  TORCH_CHECK(num_iters >= 0, "cluster_order: num_iters must be >= 0");
  at::Tensor x = input;
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    x = x.to(at::kFloat);  // half precision runs in float32
  }
  x = x.contiguous();
  const int64_t B = x.size(0), N = x.size(1);
  const int64_t L = num_levels;
  const int64_t G = int64_t(1) << L;
  const int64_t m = (N + G - 1) / G;
  TORCH_CHECK(m * G < std::numeric_limits<int32_t>::max(),
              "cluster_order: too many tokens");
  at::Tensor out = at::empty({B, G, m}, x.options().dtype(at::kLong));
  if (L == 0) {  // one leaf: the tokens in their order
    int64_t* op = out.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < m; ++i) {
        op[b * m + i] = i;
      }
    }
    return out;
  }
  if (x.scalar_type() == at::kDouble) {
    cluster_rows<double>(x, L, m, num_iters, temperature, out);
  } else {
    cluster_rows<float>(x, L, m, num_iters, temperature, out);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "mmboat's compiled operators (mmboat/ops/csrc)";
  module.def("cluster_order_cpu", &cluster_order_cpu,
             "The CPU kernel of mmboat::cluster_order: (B, N, d) float, the "
             "number of levels, refinement iterations and temperature -> "
             "(B, 2**L, m) long",
             py::arg("x"), py::arg("num_levels"), py::arg("num_iters"),
             py::arg("temperature"),
             py::call_guard<py::gil_scoped_release>());
}
