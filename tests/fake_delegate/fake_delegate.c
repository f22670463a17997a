/* A stand-in for a SoC vendor's external TFLite delegate (Amlogic's libvx_delegate.so, Qualcomm's
 * libQnnTFLiteDelegate.so, Arm NN's libarmnnDelegate.so), for machines without that NPU.
 *
 * It exports the two entry points TFLite's external-delegate loader calls
 * (load_delegate(library, options) in ai-edge-litert / tflite-runtime):
 * tflite_plugin_create_delegate(keys, values, n, report_error) and tflite_plugin_destroy_delegate.
 * Its delegate claims no operation, so the model runs on the CPU and its poses equal a CPU run.
 * Failures the real libraries have, on demand through $FAKE_DELEGATE_REFUSE:
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

static int prepare(void *context, TfLiteDelegate *delegate) {
  (void)context; (void)delegate;
  note(refuses("prepare") ? "prepare refused" : "prepare");
  return refuses("prepare") ? 1 /* kTfLiteError */ : 0 /* kTfLiteOk */;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report_error)(const char *)) {
  char line[256];
  for (size_t i = 0; i < n; i++) {
    snprintf(line, sizeof line, "option %s=%s", keys[i], values[i]);
    note(line);
  }
  if (refuses("create")) {
    note("create refused");
    if (report_error) report_error("fake delegate: NPU device not found");
    return NULL;
  }
  note("created");
  TfLiteDelegate *d = calloc(1, 512); /* zeroed: no buffer-handle hooks, no opaque builder */
  d->Prepare = prepare;
  return d;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) { note("destroyed"); free(delegate); }
