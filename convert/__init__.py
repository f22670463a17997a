"""edgepose's workstation-side converter: float PoseNet -> ``.tflite`` in every precision.

Installed with the ``[convert]`` extra; the only part of edgepose that needs TensorFlow, which is
imported lazily (only when a conversion runs). Modules:

* :mod:`convert.sources` - read frozen graphs, TF1 checkpoints, TensorFlow.js graph models (:mod:`convert.tfjs`),
  Keras models and SavedModels into one TensorFlow function with named output roles;
* :mod:`convert.api` - :func:`convert.api.convert`: one precision, one ``.tflite`` with edgepose metadata;
* :mod:`convert.tflite` - the TFLite converter settings per precision, output-role matching, running models;
* :mod:`convert.rounding`, :mod:`convert.equalize` - graph rewrites that make int8 more accurate;
* :mod:`convert.calibration` - calibration/evaluation images and the held-out split;
* :mod:`convert.edgetpu` - ``edgetpu_compiler`` and the offline Edge TPU compatibility report;
* :mod:`convert.report` - the fidelity report; :mod:`convert.model_types` - output roles and metadata per model type.

User guide: convert/README.md. Command line: ``edgepose convert``.
"""
