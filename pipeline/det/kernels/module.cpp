// The Python module of dgsynth's CPU kernels (pipeline/det/kernels/__init__.py builds it).
#include <torch/extension.h>

void roi_align_forward(at::Tensor input, at::Tensor rois, at::Tensor output, double scale, int64_t sampling,
                       bool aligned);
void roi_align_backward(at::Tensor grad_output, at::Tensor rois, at::Tensor grad_input, double scale,
                        int64_t sampling, bool aligned);
at::Tensor nms(at::Tensor boxes, at::Tensor scores, double iou_threshold, int64_t offset);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("roi_align_forward", &roi_align_forward, "RoIAlign average pooling, forward (CPU)",
        py::call_guard<py::gil_scoped_release>());
  m.def("roi_align_backward", &roi_align_backward, "RoIAlign average pooling, backward (CPU)",
        py::call_guard<py::gil_scoped_release>());
  m.def("nms", &nms, "NMS: indices of the kept boxes in descending score order (CPU, float32)",
        py::call_guard<py::gil_scoped_release>());
}
