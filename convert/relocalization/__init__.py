"""Camera relocalization (PoseNet of Kendall et al., ICCV 2015) on the workstation.

* :mod:`.scene` renders a synthetic room textured with photographs at known poses;
* :mod:`.dataset` reads and writes Cambridge Landmarks / 7-Scenes ``dataset_*.txt`` files;
* :mod:`.model` defines the network and Kendall's loss (TensorFlow);
* :mod:`.train` trains, evaluates against the mean-pose baseline and exports ``.tflite``.

Only :mod:`.model` and :mod:`.train` import TensorFlow, and only when called.
"""
