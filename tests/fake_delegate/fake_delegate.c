/* A stand-in for an external TFLite delegate library, for machines without the accelerator:
 * Coral's libedgetpu.so.1, or a SoC vendor's NPU delegate (Amlogic's libvx_delegate.so, Qualcomm's
 * libQnnTFLiteDelegate.so, Arm NN's libarmnnDelegate.so). tests/conftest.py builds it once, under both names.
 *
 * It exports the two entry points TFLite's external-delegate loader calls (load_delegate(library, options)
 * in ai-edge-litert / tflite-runtime): tflite_plugin_create_delegate(keys, values, n, report_error) and
 * tflite_plugin_destroy_delegate. Its delegate claims no operation, so the model runs on the CPU and its
 * poses equal a CPU run. Like libedgetpu it reads the "device" option ("usb", "usb:N", "pci", "pci:N", ":N")
 * and refuses a device that is not attached; the attached ones are $FAKE_DELEGATE_DEVICES (default "usb:0").
 * Other failures of the real libraries, on demand through $FAKE_DELEGATE_REFUSE:
 *   "create"  - creation fails, as when the NPU driver (/dev/galcore, the DSP) is absent;
 *   "prepare" - Prepare returns kTfLiteError, as when the delegate rejects the graph.
 * Every call, with its options, is appended to $FAKE_DELEGATE_LOG.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TfLiteDelegate {
  void *data_;
  int (*Prepare)(void *context, struct TfLiteDelegate *delegate);
  int (*CopyFromBufferHandle)(void *, struct TfLiteDelegate *, int, void *);
  int (*CopyToBufferHandle)(void *, struct TfLiteDelegate *, int, void *);
  void (*FreeBufferHandle)(void *, struct TfLiteDelegate *, int *);
  int64_t flags;
  void *opaque_delegate_builder;
} TfLiteDelegate;

static void note(const char *line) {
  const char *path = getenv("FAKE_DELEGATE_LOG");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (f) { fprintf(f, "%s\n", line); fclose(f); }
}

static int refuses(const char *what) {
  const char *r = getenv("FAKE_DELEGATE_REFUSE");
  return r != NULL && strcmp(r, what) == 0;
}

static int attached(const char *device) {
  const char *list = getenv("FAKE_DELEGATE_DEVICES");
  char buf[256], want[64];
  if (!list) list = "usb:0";
  if (device == NULL || device[0] == '\0') return list[0] != '\0';
  snprintf(buf, sizeof buf, ",%s,", list);
  /* "usb" and "pci" mean the first of that kind, ":N" the N-th of any kind (one-device lists here). */
  if (strcmp(device, "usb") == 0 || strcmp(device, "pci") == 0) {
    snprintf(want, sizeof want, ",%s:", device);
    return strstr(buf, want) != NULL;
  }
  if (device[0] == ':') return atoi(device + 1) == 0 && list[0] != '\0';
  snprintf(want, sizeof want, ",%s,", device);
  return strstr(buf, want) != NULL;
}

static int prepare(void *context, TfLiteDelegate *delegate) {
  (void)context; (void)delegate;
  note(refuses("prepare") ? "prepare refused" : "prepare");
  return refuses("prepare") ? 1 /* kTfLiteError */ : 0 /* kTfLiteOk */;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report_error)(const char *)) {
  const char *device = NULL;
  char line[256];
  for (size_t i = 0; i < n; i++) {
    snprintf(line, sizeof line, "option %s=%s", keys[i], values[i]);
    note(line);
    if (strcmp(keys[i], "device") == 0) device = values[i];
  }
  if (refuses("create")) {
    note("create refused");
    if (report_error) report_error("fake delegate: NPU device not found");
    return NULL;
  }
  if (!attached(device)) {
    snprintf(line, sizeof line, "Failed to open device %s", device ? device : "(any)");
    note(line);
    if (report_error) report_error(line);
    return NULL;
  }
  note("created");
  TfLiteDelegate *d = calloc(1, 512); /* zeroed: no buffer-handle hooks, no opaque builder */
  d->Prepare = prepare;
  return d;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) { note("destroyed"); free(delegate); }
