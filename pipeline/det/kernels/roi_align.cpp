// RoIAlign (average pooling) on the CPU on all of torch's threads, giving the same bits as mmcv 2.1's kernel.
//
// mmcv's CPU kernel runs on one thread, and its backward pass works out each sample's bilinear weights again for
// every channel. Here the weights of every (RoI, bin, sample) are worked out once with mmcv's float arithmetic, in
// its order. The forward pass splits RoIs across threads (each output is its own sum). The backward pass splits
// channels: each thread owns whole channels of the input gradient and adds into them in mmcv's order (RoI, bin,
// sample, corner), so every sum is made of the same terms in the same order.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

template <typename T>
struct Sample {
  int pos[4];    // offsets of the four neighbours in a channel (0 where the sample lies outside the map)
  T weight[4];   // their bilinear weights (0 outside)
  bool inside;   // the backward pass adds only samples inside the map
};

template <typename T>
struct Box {
  int image;
  int grid_h, grid_w;  // samples per bin along each side
  T count;             // samples per bin, at least 1
  int64_t first;       // index of its first sample
};

template <typename T>
Box<T> box_of(const T* roi, T scale, int sampling, bool aligned, int pooled_h, int pooled_w, T* start_h,
              T* start_w, T* bin_h, T* bin_w) {
  T offset = aligned ? (T)0.5 : (T)0.0;
  *start_w = roi[1] * scale - offset;
  *start_h = roi[2] * scale - offset;
  T roi_w = (roi[3] * scale - offset) - *start_w;
  T roi_h = (roi[4] * scale - offset) - *start_h;
  if (aligned) {
    TORCH_CHECK(roi_w >= 0 && roi_h >= 0, "RoIs in RoIAlign must have a non-negative size");
  } else {
    roi_w = std::max(roi_w, (T)1.);
    roi_h = std::max(roi_h, (T)1.);
  }
  *bin_h = static_cast<T>(roi_h) / static_cast<T>(pooled_h);
  *bin_w = static_cast<T>(roi_w) / static_cast<T>(pooled_w);
  Box<T> box;
  box.image = roi[0];
  box.grid_h = sampling > 0 ? sampling : ceilf(roi_h / pooled_h);
  box.grid_w = sampling > 0 ? sampling : ceilf(roi_w / pooled_w);
  box.count = std::max(box.grid_h * box.grid_w, 1);
  return box;
}

template <typename T>
Sample<T> sample_at(T y, T x, int height, int width) {
  Sample<T> s{};
  s.inside = !(y < -1.0 || y > height || x < -1.0 || x > width);
  if (!s.inside) return s;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int y_low = (int)y, x_low = (int)x, y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = (T)y_low;
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = (T)x_low;
  } else {
    x_high = x_low + 1;
  }
  T ly = y - y_low, lx = x - x_low;
  T hy = 1. - ly, hx = 1. - lx;
  s.pos[0] = y_low * width + x_low;
  s.pos[1] = y_low * width + x_high;
  s.pos[2] = y_high * width + x_low;
  s.pos[3] = y_high * width + x_high;
  s.weight[0] = hy * hx;
  s.weight[1] = hy * lx;
  s.weight[2] = ly * hx;
  s.weight[3] = ly * lx;
  return s;
}

// The sizes of one call, the boxes of all its RoIs and their samples, bin by bin (ph, pw), then iy, ix in a bin.
template <typename T>
struct Plan {
  int channels, height, width, pooled_h, pooled_w;
  int64_t n_rois;
  std::vector<Box<T>> boxes;
  std::vector<Sample<T>> samples;
};

// `features` (or its gradient) is N x C x H x W, `pooled` (the output or its gradient) K x C x PH x PW.
template <typename T>
Plan<T> plan(const at::Tensor& features, const at::Tensor& pooled, const at::Tensor& rois_tensor, T scale,
             int sampling, bool aligned) {
  Plan<T> p{(int)features.size(1), (int)features.size(2), (int)features.size(3), (int)pooled.size(2),
            (int)pooled.size(3), rois_tensor.size(0)};
  const int64_t n_rois = p.n_rois;
  const int pooled_h = p.pooled_h, pooled_w = p.pooled_w, height = p.height, width = p.width;
  const T* rois = rois_tensor.data_ptr<T>();
  std::vector<Box<T>>& boxes = p.boxes;
  std::vector<Sample<T>>& samples = p.samples;
  std::vector<T> geometry(n_rois * 4);
  boxes.resize(n_rois);
  int64_t total = 0;
  for (int64_t n = 0; n < n_rois; n++) {
    T* g = &geometry[n * 4];
    boxes[n] = box_of<T>(rois + n * 5, scale, sampling, aligned, pooled_h, pooled_w, g, g + 1, g + 2, g + 3);
    boxes[n].first = total;
    total += (int64_t)boxes[n].grid_h * boxes[n].grid_w * pooled_h * pooled_w;
  }
  samples.resize(total);
  at::parallel_for(0, n_rois, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; n++) {
      const Box<T>& b = boxes[n];
      const T start_h = geometry[n * 4], start_w = geometry[n * 4 + 1];
      const T bin_h = geometry[n * 4 + 2], bin_w = geometry[n * 4 + 3];
      Sample<T>* s = samples.data() + b.first;
      for (int ph = 0; ph < pooled_h; ph++)
        for (int pw = 0; pw < pooled_w; pw++)
          for (int iy = 0; iy < b.grid_h; iy++) {
            const T y = start_h + ph * bin_h + static_cast<T>(iy + .5f) * bin_h / static_cast<T>(b.grid_h);
            for (int ix = 0; ix < b.grid_w; ix++) {
              const T x = start_w + pw * bin_w + static_cast<T>(ix + .5f) * bin_w / static_cast<T>(b.grid_w);
              *s++ = sample_at<T>(y, x, height, width);
            }
          }
    }
  });
  return p;
}

template <typename T>
void forward(const Plan<T>& p, const T* in, T* out) {
  const int64_t map_size = (int64_t)p.height * p.width, bins = p.pooled_h * p.pooled_w;
  at::parallel_for(0, p.n_rois, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; n++) {
      const Box<T>& b = p.boxes[n];
      const int per_bin = b.grid_h * b.grid_w;
      for (int c = 0; c < p.channels; c++) {
        const T* map = in + ((int64_t)b.image * p.channels + c) * map_size;
        T* o = out + (n * p.channels + c) * bins;
        const Sample<T>* s = p.samples.data() + b.first;
        for (int bin = 0; bin < bins; bin++) {
          T sum = 0.;
          for (int k = 0; k < per_bin; k++, s++) {
            T value = s->weight[0] * map[s->pos[0]] + s->weight[1] * map[s->pos[1]] +
                      s->weight[2] * map[s->pos[2]] + s->weight[3] * map[s->pos[3]];
            sum += value;
          }
          o[bin] = sum / b.count;
        }
      }
    }
  });
}

template <typename T>
void backward(const Plan<T>& p, const T* grad_out, T* grad_in) {
  const int64_t map_size = (int64_t)p.height * p.width, bins = p.pooled_h * p.pooled_w;
  at::parallel_for(0, p.channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; c++) {
      for (int64_t n = 0; n < p.n_rois; n++) {
        const Box<T>& b = p.boxes[n];
        const int per_bin = b.grid_h * b.grid_w;
        const T count = per_bin;
        T* map = grad_in + ((int64_t)b.image * p.channels + c) * map_size;
        const T* g = grad_out + (n * p.channels + c) * bins;
        const Sample<T>* s = p.samples.data() + b.first;
        for (int bin = 0; bin < bins; bin++) {
          for (int k = 0; k < per_bin; k++, s++) {
            if (!s->inside) continue;
            for (int corner = 0; corner < 4; corner++) map[s->pos[corner]] += g[bin] * s->weight[corner] / count;
          }
        }
      }
    }
  });
}

void check(const at::Tensor& features, const at::Tensor& rois) {
  TORCH_CHECK(features.device().is_cpu() && rois.device().is_cpu(), "roi_align here runs on the CPU only");
  TORCH_CHECK(features.is_contiguous() && rois.is_contiguous(), "roi_align needs contiguous tensors");
  TORCH_CHECK(features.scalar_type() == rois.scalar_type(), "roi_align needs features and RoIs of one dtype");
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "RoIs must be K x 5: image index, x1, y1, x2, y2");
}

}  // namespace

void roi_align_forward(at::Tensor input, at::Tensor rois, at::Tensor output, double scale, int64_t sampling,
                       bool aligned) {
  check(input, rois);
  TORCH_CHECK(output.is_contiguous(), "roi_align needs a contiguous output");
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_forward", [&] {
    forward<scalar_t>(plan<scalar_t>(input, output, rois, static_cast<scalar_t>(scale), sampling, aligned),
                      input.data_ptr<scalar_t>(), output.data_ptr<scalar_t>());
  });
}

void roi_align_backward(at::Tensor grad_output, at::Tensor rois, at::Tensor grad_input, double scale,
                        int64_t sampling, bool aligned) {
  check(grad_input, rois);
  TORCH_CHECK(grad_output.is_contiguous(), "roi_align needs a contiguous output gradient");
  AT_DISPATCH_FLOATING_TYPES(grad_input.scalar_type(), "roi_align_backward", [&] {
    backward<scalar_t>(plan<scalar_t>(grad_input, grad_output, rois, static_cast<scalar_t>(scale), sampling, aligned),
                       grad_output.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>());
  });
}
