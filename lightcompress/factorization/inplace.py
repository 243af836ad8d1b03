"""Rebuilding a subclassed or keras-hub model with twins: copy it, then swap layers in place.

``keras.models.clone_model`` rebuilds only Sequential and Functional graphs. Any other
``keras.Model`` is copied through its own class (config, then weights: ``io.substitutions.
copy_model``), and each layer the plan converts is swapped for its twin where the copy holds it
(``io.substitutions.substitute``): the model's own ``call()`` then runs the twins. The source
model is never changed.
"""

from __future__ import annotations

import keras

from ..io import substitutions


def rebuild_in_place(model, replace) -> keras.Model:
    """A copy of ``model`` (same class, sharing nothing with it) in which every layer for which
    ``replace(layer)`` (called with the source model's layers) returns a new layer holds that one."""
    copy = substitutions.copy_model(model)
    source = dict(substitutions.layer_tree(model, leaves_only=False))
    replacements = {}
    for path, layer in substitutions.layer_tree(copy, leaves_only=False):
        original = source.get(path)
        if original is None:
            continue
        new = replace(original)
        if new is not None:
            replacements[id(layer)] = new
    substitutions.substitute(copy, replacements)
    return copy
