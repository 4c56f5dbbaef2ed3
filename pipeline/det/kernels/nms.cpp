// NMS on the CPU on all of torch's threads, keeping the same boxes as mmcv 2.1's kernel.
//
// mmcv's CPU NMS walks the boxes in descending score order on one thread: each box still selected removes every later
// selected box whose IoU with it is above the threshold. Here every pair's test (box i before box j in that order) is
// worked out first, with mmcv's float arithmetic in its order, into a matrix of bits (one row per box, rows split
// across threads, each row's tests in a loop the compiler vectorises); then one pass in score order keeps a box
// unless the row of an earlier kept box has its bit. That keeps exactly the boxes mmcv keeps: mmcv only skips the
// tests of boxes already removed, whose outcome cannot change.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kBits = 64;

// The tests of box i against every later box: bit j % 64 of word j / 64 of `row` (words before i's own left alone).
void suppressed_by(int64_t i, int64_t n, const float* x1, const float* y1, const float* x2, const float* y2,
                   const float* areas, float threshold, int offset, uint64_t* row) {
  const float ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], iarea = areas[i];
  uint8_t over[kBits];
  for (int64_t word = i / kBits; word * kBits < n; word++) {
    const int64_t first = word * kBits, count = std::min(kBits, n - first);
    for (int64_t b = 0; b < count; b++) {
      const int64_t j = first + b;
      const float xx1 = std::max(ix1, x1[j]);
      const float yy1 = std::max(iy1, y1[j]);
      const float xx2 = std::min(ix2, x2[j]);
      const float yy2 = std::min(iy2, y2[j]);
      const float w = std::max(0.f, xx2 - xx1 + offset);
      const float h = std::max(0.f, yy2 - yy1 + offset);
      const float inter = w * h;
      const float ovr = inter / (iarea + areas[j] - inter);
      over[b] = ovr > threshold;
    }
    std::fill(over + count, over + kBits, 0);
    uint64_t bits = 0;
    for (int group = 0; group < kBits / 8; group++) {  // 8 bytes of 0 or 1 -> 8 bits, one multiplication
      uint64_t bytes;
      std::memcpy(&bytes, over + 8 * group, 8);
      bits |= (bytes * 0x0102040810204080ULL >> 56) << (8 * group);
    }
    if (word == i / kBits) bits &= ~((uint64_t{2} << (i % kBits)) - 1);  // only later boxes: j > i
    row[word] = bits;
  }
}

}  // namespace

at::Tensor nms(at::Tensor boxes, at::Tensor scores, double iou_threshold, int64_t offset_) {
  TORCH_CHECK(boxes.device().is_cpu() && scores.device().is_cpu(), "nms: CPU tensors only");
  TORCH_CHECK(boxes.scalar_type() == at::kFloat && scores.scalar_type() == at::kFloat, "nms: float32 tensors only");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && scores.dim() == 1 && scores.size(0) == boxes.size(0),
              "nms: boxes must be N x 4 (x1, y1, x2, y2) and scores N");
  if (boxes.numel() == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  const int offset = static_cast<int>(offset_);  // mmcv's types: an int offset and a float threshold
  const float threshold = static_cast<float>(iou_threshold);
  // mmcv's areas and order, by the same tensor operations; then every array in that order
  auto x1_t = boxes.select(1, 0).contiguous();
  auto y1_t = boxes.select(1, 1).contiguous();
  auto x2_t = boxes.select(1, 2).contiguous();
  auto y2_t = boxes.select(1, 3).contiguous();
  at::Tensor areas_t = (x2_t - x1_t + offset) * (y2_t - y1_t + offset);
  at::Tensor order_t = std::get<1>(scores.sort(0, /*descending=*/true));
  at::Tensor sorted = at::stack({x1_t, y1_t, x2_t, y2_t, areas_t}).index_select(1, order_t).contiguous();
  const float* x1 = sorted[0].data_ptr<float>();
  const float* y1 = sorted[1].data_ptr<float>();
  const float* x2 = sorted[2].data_ptr<float>();
  const float* y2 = sorted[3].data_ptr<float>();
  const float* areas = sorted[4].data_ptr<float>();

  const int64_t n = boxes.size(0), words = (n + kBits - 1) / kBits;
  std::vector<uint64_t> matrix(static_cast<size_t>(n * words));
  // Row i tests n - i boxes: rows i and n - 1 - i go together, so that every task has the same work.
  at::parallel_for(0, (n + 1) / 2, 16, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; k++) {
      suppressed_by(k, n, x1, y1, x2, y2, areas, threshold, offset, matrix.data() + k * words);
      const int64_t pair = n - 1 - k;  // k itself for the middle row of an odd count
      if (pair != k) suppressed_by(pair, n, x1, y1, x2, y2, areas, threshold, offset, matrix.data() + pair * words);
    }
  });
  at::Tensor select_t = at::zeros({n}, boxes.options().dtype(at::kBool));
  bool* select = select_t.data_ptr<bool>();
  std::vector<uint64_t> removed(static_cast<size_t>(words), 0);
  for (int64_t i = 0; i < n; i++) {
    if (removed[i / kBits] >> (i % kBits) & 1) continue;
    select[i] = true;
    const uint64_t* row = matrix.data() + i * words;
    for (int64_t word = i / kBits; word < words; word++) removed[word] |= row[word];
  }
  return order_t.masked_select(select_t);
}
