/* recorded_nvml.c - a stand-in for the NVIDIA driver's libnvidia-ml.so.1 with fixed
 * readings, so the GPU telemetry path (engine/nvml.c, sampler.c) runs and is checked
 * exactly on machines without a GPU. Built as libnvidia-ml.so.1 in its own directory;
 * a test puts that directory on LD_LIBRARY_PATH (tests/e2e/test_observe.py).
 *
 * Two GPUs: power 150 W and 50 W, utilisation 60/30 % and 40/10 %, 1024 and 2048 MiB
 * used, SM clocks 1500 and 1000 MHz, memory clocks 2000 MHz; the energy counter grows
 * at each GPU's power on the monotonic clock (mJ). */
#include <time.h>

typedef struct { unsigned int gpu, memory; } utilization;
typedef struct { unsigned long long total, free, used; } memory;

static const unsigned POWER_MW[2] = {150000, 50000};

static int devices[2] = {0, 1}; /* a handle is the address of its index */

static int index_of(void *d) { return *(int *)d; }

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int r) { return r ? "recorded error" : "Success"; }

int nvmlDeviceGetCount_v2(unsigned int *n) {
  *n = 2;
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) {
  if (i > 1) return 2;
  *d = &devices[i];
  return 0;
}

int nvmlDeviceGetPowerUsage(void *d, unsigned int *mw) {
  *mw = POWER_MW[index_of(d)];
  return 0;
}

int nvmlDeviceGetUtilizationRates(void *d, utilization *u) {
  u->gpu = index_of(d) ? 40 : 60;
  u->memory = index_of(d) ? 10 : 30;
  return 0;
}

int nvmlDeviceGetMemoryInfo(void *d, memory *m) {
  m->total = 80ULL << 30;
  m->used = (unsigned long long)(index_of(d) + 1) << 30;
  m->free = m->total - m->used;
  return 0;
}

int nvmlDeviceGetClockInfo(void *d, int type, unsigned int *mhz) {
  *mhz = type == 1 ? (index_of(d) ? 1000 : 1500) : 2000;
  return 0;
}

int nvmlDeviceGetTotalEnergyConsumption(void *d, unsigned long long *mj) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
  *mj = (unsigned long long)(s * POWER_MW[index_of(d)]); /* W x s = J: mW x s = mJ */
  return 0;
}
