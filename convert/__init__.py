"""edgepose's workstation-side converter: float PoseNet -> ``.tflite`` in every precision.

Installed with the ``[convert]`` extra; the only part of edgepose that needs TensorFlow, which is
imported lazily (only when a conversion runs). Modules:

* :mod:`edgepose_convert.sources` - read frozen graphs, TF1 checkpoints, TensorFlow.js graph models (:mod:`edgepose_convert.tfjs`),
  Keras models and SavedModels into one TensorFlow function with named output roles;
* :mod:`edgepose_convert.api` - :func:`edgepose_convert.api.convert`: one precision, one ``.tflite`` with edgepose metadata;
* :mod:`edgepose_convert.tflite` - the TFLite converter settings per precision, output-role matching, running models;
* :mod:`edgepose_convert.rounding`, :mod:`edgepose_convert.equalize` - graph rewrites that make int8 more accurate;
* :mod:`edgepose_convert.calibration` - calibration/evaluation images and the held-out split;
* :mod:`edgepose_convert.edgetpu` - ``edgetpu_compiler`` and the offline Edge TPU compatibility report;
* :mod:`edgepose_convert.actions`, :mod:`edgepose_convert.relocalization` - training and export of the action classifier
  and of the camera-pose (Kendall et al.) model;
* :mod:`edgepose_convert.report` - the fidelity report; :mod:`edgepose_convert.model_types` - output roles and metadata per model type.

The sources live in ``convert/`` and install as ``edgepose_convert`` (see pyproject.toml's ``[tool.setuptools]``), so nothing
else named ``convert`` in site-packages can shadow them. User guide: convert/README.md.
Command line: ``edgepose convert``.
"""
