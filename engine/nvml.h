/* nvml.h - GPU telemetry through NVML (libnvidia-ml.so.1, the NVIDIA driver's library),
 * loaded at run time: a machine without the driver builds and runs the same binary
 * and gets the reason instead of samples.
 *
 * Devices are NVML's indices (nvidia-smi's; CUDA's too under
 * CUDA_DEVICE_ORDER=PCI_BUS_ID). A figure a device cannot give is NaN.
 * Ownership: ke_nvml_open allocates the handle, ke_nvml_close frees it and shuts NVML
 * down. Errors: ke_nvml_open returns NULL with the reason in err ("libnvidia-ml.so.1
 * not found: ...", "nvmlInit: ...", "GPU 3 not found: 2 GPUs"). Not thread-safe: one
 * thread uses a handle. */
#ifndef KNOB_NVML_H
#define KNOB_NVML_H
#include <stddef.h>

typedef struct ke_nvml ke_nvml;

typedef struct {
  int index;
  double power_w, sm_util_pct, memory_util_pct, memory_used_mib, sm_clock_mhz, memory_clock_mhz;
  double energy_mj; /* the device's energy counter (mJ since the driver loaded) */
} ke_gpu_sample;

/* devices: the NVML indices to sample (n of them), or n == 0 for every GPU. */
ke_nvml *ke_nvml_open(const int *devices, int n, char *err, size_t errlen);
int ke_nvml_count(const ke_nvml *g);
/* One sample of each device into out (ke_nvml_count entries). */
void ke_nvml_sample(ke_nvml *g, ke_gpu_sample *out);
void ke_nvml_close(ke_nvml *g);

#endif
