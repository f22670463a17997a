/* A stand-in for Coral's libedgetpu.so.1, for machines without an Edge TPU.
 *
 * It exports what the real library exports to TFLite's external-delegate loader
 * (tflite.load_delegate(library, options) in ai-edge-litert / tflite-runtime):
 * tflite_plugin_create_delegate(keys, values, n, report_error) and
 * tflite_plugin_destroy_delegate. Like libedgetpu it reads the "device" option
 * ("usb", "usb:N", "pci", "pci:N", ":N") and refuses a device that is not attached;
 * the attached ones are listed in $FAKE_EDGETPU_DEVICES (default "usb:0").
 * Its delegate claims no operation, so the model runs on the CPU: use it with CPU
 * models forced onto the "Edge TPU" (model.edgetpu = "on"). Every call is appended
 * to $FAKE_EDGETPU_LOG so tests can see what edgepose asked for.
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

static int prepare(void *context, TfLiteDelegate *delegate) { (void)context; (void)delegate; return 0; /* kTfLiteOk */ }

static void note(const char *line) {
  const char *path = getenv("FAKE_EDGETPU_LOG");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (f) { fprintf(f, "%s\n", line); fclose(f); }
}

static int attached(const char *device) {
  const char *list = getenv("FAKE_EDGETPU_DEVICES");
  char buf[256];
  if (!list) list = "usb:0";
  if (device == NULL || device[0] == '\0') return list[0] != '\0';
  snprintf(buf, sizeof buf, ",%s,", list);
  char want[64];
  /* "usb" and "pci" mean the first of that kind, ":N" the N-th of any kind (one-device lists here). */
  if (strcmp(device, "usb") == 0 || strcmp(device, "pci") == 0) { snprintf(want, sizeof want, ",%s:", device); return strstr(buf, want) != NULL; }
  if (device[0] == ':') return atoi(device + 1) == 0 && list[0] != '\0';
  snprintf(want, sizeof want, ",%s,", device);
  return strstr(buf, want) != NULL;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report_error)(const char *)) {
  const char *device = NULL;
  char line[256];
  for (size_t i = 0; i < n; i++) {
    snprintf(line, sizeof line, "option %s=%s", keys[i], values[i]);
    note(line);
    if (strcmp(keys[i], "device") == 0) device = values[i];
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
