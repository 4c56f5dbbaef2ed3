// The Python module of dgsynth's CPU kernels (pipeline/det/kernels/__init__.py builds it).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

void roi_align_forward(at::Tensor input, at::Tensor rois, at::Tensor output, double scale, int64_t sampling,
                       bool aligned);
void roi_align_backward(at::Tensor grad_output, at::Tensor rois, at::Tensor grad_input, double scale,
                        int64_t sampling, bool aligned);
at::Tensor nms(at::Tensor boxes, at::Tensor scores, double iou_threshold, int64_t offset);

// How many threads at::parallel_for runs a loop on in this build (`dgsynth doctor`, tests): built without OpenMP it
// runs every loop on one thread, whatever torch.get_num_threads() says.
int64_t parallel_threads() {
  std::vector<int> used(static_cast<size_t>(at::get_num_threads()), 0);
  at::parallel_for(0, 1 << 16, 1, [&](int64_t, int64_t) { used[at::get_thread_num()] = 1; });
  return std::count(used.begin(), used.end(), 1);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("roi_align_forward", &roi_align_forward, "RoIAlign average pooling, forward (CPU)",
        py::call_guard<py::gil_scoped_release>());
  m.def("roi_align_backward", &roi_align_backward, "RoIAlign average pooling, backward (CPU)",
        py::call_guard<py::gil_scoped_release>());
  m.def("nms", &nms, "NMS: indices of the kept boxes in descending score order (CPU, float32)",
        py::call_guard<py::gil_scoped_release>());
  m.def("parallel_threads", &parallel_threads, "threads at::parallel_for uses in this build");
}
