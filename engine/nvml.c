/* nvml.c - see nvml.h: the few NVML calls the sampler needs, by dlsym. */
#include "nvml.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef int nvml_ret;
typedef void *nvml_device;
typedef struct { unsigned int gpu, memory; } nvml_utilization;
typedef struct { unsigned long long total, free, used; } nvml_memory;
enum { NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };

typedef struct {
  nvml_ret (*init)(void);
  nvml_ret (*shutdown)(void);
  const char *(*error_string)(nvml_ret);
  nvml_ret (*count)(unsigned int *);
  nvml_ret (*handle)(unsigned int, nvml_device *);
  nvml_ret (*power)(nvml_device, unsigned int *);
  nvml_ret (*utilization)(nvml_device, nvml_utilization *);
  nvml_ret (*memory)(nvml_device, nvml_memory *);
  nvml_ret (*clock)(nvml_device, int, unsigned int *);
  nvml_ret (*energy)(nvml_device, unsigned long long *);
} nvml_api;

struct ke_nvml {
  void *lib;
  nvml_api api;
  int n;
  int *index;
  nvml_device *dev;
};

/* The functions by name; the optional ones (power, energy, ...) may be missing. */
static int load_api(void *lib, nvml_api *a) {
  *(void **)&a->init = dlsym(lib, "nvmlInit_v2");
  *(void **)&a->shutdown = dlsym(lib, "nvmlShutdown");
  *(void **)&a->error_string = dlsym(lib, "nvmlErrorString");
  *(void **)&a->count = dlsym(lib, "nvmlDeviceGetCount_v2");
  *(void **)&a->handle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
  *(void **)&a->power = dlsym(lib, "nvmlDeviceGetPowerUsage");
  *(void **)&a->utilization = dlsym(lib, "nvmlDeviceGetUtilizationRates");
  *(void **)&a->memory = dlsym(lib, "nvmlDeviceGetMemoryInfo");
  *(void **)&a->clock = dlsym(lib, "nvmlDeviceGetClockInfo");
  *(void **)&a->energy = dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption");
  return a->init && a->shutdown && a->count && a->handle ? 0 : -1;
}

static const char *nvml_error(const nvml_api *a, nvml_ret r) {
  const char *s = a->error_string ? a->error_string(r) : NULL;
  return s ? s : "error";
}

/* Every wanted device's handle; -1 with the reason in err. */
static int open_devices(ke_nvml *g, const int *devices, int n, char *err, size_t errlen) {
  unsigned int count = 0;
  nvml_ret r = g->api.count(&count);
  if (r != 0) {
    snprintf(err, errlen, "nvmlDeviceGetCount: %s", nvml_error(&g->api, r));
    return -1;
  }
  if (count == 0) {
    snprintf(err, errlen, "NVML sees no GPU");
    return -1;
  }
  g->n = n > 0 ? n : (int)count;
  g->index = calloc((size_t)g->n, sizeof *g->index);
  g->dev = calloc((size_t)g->n, sizeof *g->dev);
  if (!g->index || !g->dev) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < g->n; i++) {
    g->index[i] = n > 0 ? devices[i] : i;
    if (g->index[i] < 0 || (unsigned)g->index[i] >= count) {
      snprintf(err, errlen, "GPU %d not found: NVML sees %u", g->index[i], count);
      return -1;
    }
    if ((r = g->api.handle((unsigned)g->index[i], &g->dev[i])) != 0) {
      snprintf(err, errlen, "GPU %d: %s", g->index[i], nvml_error(&g->api, r));
      return -1;
    }
  }
  return 0;
}

ke_nvml *ke_nvml_open(const int *devices, int n, char *err, size_t errlen) {
  ke_nvml *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  g->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!g->lib) {
    snprintf(err, errlen, "no NVIDIA driver: libnvidia-ml.so.1 not found");
    free(g);
    return NULL;
  }
  if (load_api(g->lib, &g->api)) {
    snprintf(err, errlen, "libnvidia-ml.so.1 lacks nvmlInit_v2 or the device functions");
  } else {
    nvml_ret r = g->api.init();
    if (r != 0) snprintf(err, errlen, "nvmlInit: %s", nvml_error(&g->api, r));
    else if (open_devices(g, devices, n, err, errlen) == 0) return g;
    else g->api.shutdown();
  }
  dlclose(g->lib);
  free(g->index);
  free(g->dev);
  free(g);
  return NULL;
}

int ke_nvml_count(const ke_nvml *g) { return g->n; }

void ke_nvml_sample(ke_nvml *g, ke_gpu_sample *out) {
  const nvml_api *a = &g->api;
  for (int i = 0; i < g->n; i++) {
    ke_gpu_sample *s = &out[i];
    nvml_device d = g->dev[i];
    unsigned int v;
    nvml_utilization u;
    nvml_memory m;
    unsigned long long mj;
    s->index = g->index[i];
    s->power_w = a->power && a->power(d, &v) == 0 ? v / 1000.0 : NAN;
    int have_util = a->utilization && a->utilization(d, &u) == 0;
    s->sm_util_pct = have_util ? u.gpu : NAN;
    s->memory_util_pct = have_util ? u.memory : NAN;
    s->memory_used_mib = a->memory && a->memory(d, &m) == 0 ? (double)m.used / (1024.0 * 1024.0) : NAN;
    s->sm_clock_mhz = a->clock && a->clock(d, NVML_CLOCK_SM, &v) == 0 ? v : NAN;
    s->memory_clock_mhz = a->clock && a->clock(d, NVML_CLOCK_MEM, &v) == 0 ? v : NAN;
    s->energy_mj = a->energy && a->energy(d, &mj) == 0 ? (double)mj : NAN;
  }
}

void ke_nvml_close(ke_nvml *g) {
  if (!g) return;
  g->api.shutdown();
  dlclose(g->lib);
  free(g->index);
  free(g->dev);
  free(g);
}
