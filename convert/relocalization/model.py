"""The relocalization network and Kendall's loss (TensorFlow, workstation side).

PoseNet (Kendall, Grimes, Cipolla, ICCV 2015) regresses the camera position
``x`` and orientation quaternion ``q`` from one image, trained with

    loss = ||x_hat - x||_2 + beta * ||q_hat - q / ||q|| ||_2

(Euclidean norms, not squared; ``q_hat`` is not normalised in training, only
at test time). ``beta`` balances the two terms and depends on the scene's
extent. Kendall fine-tuned GoogLeNet; with no pretrained weights reachable
here, the backbones are small enough to train from scratch on a CPU in minutes:

* ``small``: seven 3x3 conv/BN/ReLU layers down to a 4x4 grid, flattened (the
  grid keeps *where* things are in the image, which the pose depends on);
* ``mobilenetv2``: ``tf.keras.applications.MobileNetV2`` (alpha 0.35, ``weights=None``).

Both end in a 256-unit fully connected layer and two linear heads,
``position`` (3) and ``orientation`` (4).
"""

from __future__ import annotations

from typing import Any

ARCHS = ("small", "mobilenetv2")
#: Keeps the gradient of the Euclidean norm finite when a residual is exactly zero.
NORM_EPS = 1e-12


def _tf():
    from edgepose_convert.errors import import_tensorflow

    return import_tensorflow()


def euclidean(a: Any, b: Any) -> Any:
    """Per-sample ``||a - b||_2`` over the last axis."""
    tf = _tf()
    return tf.sqrt(tf.reduce_sum(tf.square(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)), axis=-1) + NORM_EPS)


def position_loss(x_true: Any, x_pred: Any) -> Any:
    """``||x_hat - x||`` per sample."""
    return euclidean(x_pred, x_true)


def orientation_loss(q_true: Any, q_pred: Any) -> Any:
    """``||q_hat - q / ||q|| ||`` per sample: the target is normalised, the prediction is not."""
    tf = _tf()
    q = tf.cast(q_true, tf.float32)
    q = q / tf.maximum(tf.norm(q, axis=-1, keepdims=True), NORM_EPS)
    return euclidean(q_pred, q)


def kendall_loss(x_true: Any, x_pred: Any, q_true: Any, q_pred: Any, beta: float) -> Any:
    """Kendall's loss averaged over the batch (what training minimises: Keras sums the two heads' losses with weights 1 and ``beta``)."""
    tf = _tf()
    return tf.reduce_mean(position_loss(x_true, x_pred)) + float(beta) * tf.reduce_mean(
        orientation_loss(q_true, q_pred)
    )


def build_model(
    input_size: tuple[int, int] = (128, 128), arch: str = "small", dropout: float = 0.2, fc: int = 256
) -> Any:
    """A Keras model: ``image`` ``[N, h, w, 3]`` RGB in ``[-1, 1]`` -> ``{"position": [N, 3], "orientation": [N, 4]}``."""
    tf = _tf()
    keras = tf.keras
    layers = keras.layers
    h, w = input_size
    inp = keras.Input((h, w, 3), name="image")
    if arch == "small":
        x = inp
        # (filters, stride): stride-2 layers halve the grid; 128 px -> 4x4.
        plan = [(16, 2), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 2)]
        for i, (f, s) in enumerate(plan):
            x = layers.Conv2D(f, 3, strides=s, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)  # short trainings: stats must catch up
            x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.Conv2D(32, 1, activation="relu", name="squeeze")(x)  # fewer channels before flattening
        x = layers.Flatten(name="flatten")(x)
    elif arch == "mobilenetv2":
        base = keras.applications.MobileNetV2(
            input_shape=(h, w, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
        )
        x = base(inp)
    else:
        raise ValueError(f"unknown architecture {arch!r}; use one of {ARCHS}")
    x = layers.Dense(fc, activation="relu", name="fc")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    pos = layers.Dense(3, name="position")(x)
    ori = layers.Dense(4, name="orientation", bias_initializer=keras.initializers.Constant([1.0, 0.0, 0.0, 0.0]))(x)
    return keras.Model(inp, {"position": pos, "orientation": ori}, name=f"reloc_{arch}")
