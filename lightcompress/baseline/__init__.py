"""Baselines from tensorflow-model-optimization (tfmot) on the user's own Keras 3 model:
magnitude pruning, weight clustering and quantisation-aware training, at the budget low-rank
compression would meet, so the user can see what each method buys.

tfmot works only with tf_keras (Keras 2) and switches ``tf.keras`` to it on import, so it never
runs in this process: ``spec`` writes the model's architecture (a whitelist of standard layer
configs) and weights to a folder, ``worker`` (a subprocess run by its
file path, ``python .../baseline/worker.py FOLDER``, so it never imports Keras 3) rebuilds a tf_keras twin from them, checks that the twin
computes what the model computes, runs tfmot, and writes the new weights back; ``run`` drives it
and puts the weights into a copy of the original Keras 3 model. The user's file is never opened
with tf_keras (it runs Lambda code even in safe mode).

``import lightcompress.baseline`` imports the package, and so Keras 3; the worker process never does.
"""
