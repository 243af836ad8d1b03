"""The closing table of issue 15: keras.applications at small inputs (random weights).

For each architecture: plant rank-3 kernels in every factorisable layer, convert at energy
0.9999 (so every planted layer really factorises), compare outputs on 4 random inputs (max
relative difference), save as .keras and reload; then, on a fresh model with its random kernels,
plan ``target_params=0.3`` with the default layer filter and report params before -> after.

    nice -n 10 python benchmarks/reach_table.py [names...] > benchmarks/reach_table.json
"""

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lightcompress.flows.convert import convert

from lightcompress.data.synthetic import model_inputs_like  # noqa: E402
from lightcompress.planning import Energy, LayerFilter, TargetParams, make_plan  # noqa: E402
from test_reach import APPLICATIONS, plant_low_rank  # noqa: E402


def row(name):
    start = time.time()
    out = {"architecture": name}
    model = APPLICATIONS[name]()
    plant_low_rank(model)
    try:
        result = convert(model, Energy(0.9999), LayerFilter(min_params=0))
        x = model_inputs_like(model, batch=4)
        y, y2 = model.predict(x, verbose=0), result.model.predict(x, verbose=0)
        rel = np.abs(y - y2).max() / max(np.abs(y).max(), 1e-30)
        with tempfile.TemporaryDirectory() as tmp:
            result.model.save(Path(tmp) / "m.keras")
            again = keras.saving.load_model(Path(tmp) / "m.keras")
            reload_diff = float(np.abs(again.predict(x, verbose=0) - y2).max())
        out.update(converts=True, max_relative_difference=float(rel), reload_max_abs=reload_diff,
                   layer_types=sorted({p.kind for p in result.plan.converted}),
                   layers_converted=len(result.plan.converted))
    except Exception as err:  # noqa: BLE001 - the table records what failed
        out.update(converts=False, error=f"{type(err).__name__}: {err}"[:300])
    fresh = APPLICATIONS[name]()
    plan = make_plan(fresh, TargetParams(0.3), LayerFilter())
    before = int(fresh.count_params())
    out.update(params_before=before, params_after=before - plan.params_saved(),
               target_types=sorted({p.kind for p in plan.converted}),
               not_considered=sorted({r["kind"] for r in plan.not_considered}),
               seconds=round(time.time() - start, 1))
    return out


if __name__ == "__main__":
    for name in sys.argv[1:] or APPLICATIONS:
        print(json.dumps(row(name)), flush=True)
        keras.backend.clear_session()
