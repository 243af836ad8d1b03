"""Settings made and checked once per command (issue 35): ``ConvertSettings.make`` refuses what
the old keywords refused, before any work; the flow takes the settings and checks only that it is
given the data they were made for."""

import dataclasses

import pytest

from lightcompress.data.sets import DataSpec
from lightcompress.errors import OptionError
from lightcompress.flows import ConvertSettings, convert_file
from lightcompress.planning import LayerFilter, rank_rule


def test_settings_are_frozen_and_resolved():
    settings = ConvertSettings.make(rank_rule(rank=4), method="svd", layer_filter=LayerFilter(no_data_floor=0.3))
    assert settings.method.name == "svd" and settings.runtime is None and not settings.labelled
    assert settings.layer_filter.no_data_floor == 0.3  # no data set: the floor as given
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.allocation = "error"
    labelled = ConvertSettings.make(rank_rule(target_params=0.5), data=DataSpec("digits"),
                                    layer_filter=LayerFilter(no_data_floor=0.3))
    assert labelled.labelled and labelled.layer_filter.no_data_floor == 0.0  # labels: no floor


@pytest.mark.parametrize("kwargs, message", [
    ({"allocation": "error"}, "allocation='error' chooses how a target_params or target_macs budget is planned"),
    ({"calibration_samples": 100}, "calibration_samples=100 counts the training images"),
    ({"samples": "x.npy", "data": DataSpec("digits")}, "samples=... are unlabelled inputs for when there is no data"),
    ({"input_shape": (4,), "data": DataSpec("digits")}, "input_shape=4 sizes the random inputs"),
    ({"runtime": "keras"}, "runtime=keras says where target_latency is timed"),
    ({"method": "no-such-method"}, "no-such-method"),
])
def test_make_refuses_each_bad_choice_before_any_work(kwargs, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace("...", r"\.\.\.")):
        ConvertSettings.make(rank_rule(target_params=0.5), **kwargs)


def test_convert_file_refuses_data_the_settings_were_not_made_for(tmp_path):
    settings = ConvertSettings.make(rank_rule(rank=4))
    with pytest.raises(OptionError, match="the settings were made for a run without a data set"):
        convert_file(tmp_path / "absent.keras", tmp_path / "out.keras", settings, data=DataSpec("digits"))
    with pytest.raises(OptionError, match="give the settings of the run"):
        convert_file(tmp_path / "absent.keras")
    assert not (tmp_path / "out.keras").exists()


def test_export_settings_are_checked_once_and_the_flow_wants_their_data(tmp_path):
    from lightcompress.flows import ExportSettings, export_file

    settings = ExportSettings.make("litert", quantize="int8", data=DataSpec("digits"))
    assert (settings.fmt, settings.quantize, settings.threads) == ("litert", "int8", 2) and settings.calibration > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.quantize = "none"
    with pytest.raises(OptionError, match="quantize='int8' calibrates on training images; give data=NAME"):
        ExportSettings.make("litert", quantize="int8")
    with pytest.raises(OptionError, match="quantize='int8' calibrates on training images"):
        export_file(tmp_path / "absent.keras", settings, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


def test_finetune_settings_are_checked_once():
    from lightcompress.flows import FinetuneSettings
    from lightcompress.training.finetune import FitSettings

    plain = FinetuneSettings.make(FitSettings(epochs=2))
    assert plain.fit.epochs == 2 and plain.teacher is None and plain.distillation is None
    taught = FinetuneSettings.make(teacher="t.keras", alpha=0.3)
    assert taught.distillation.alpha == 0.3 and str(taught.teacher) == "t.keras"
    with pytest.raises(OptionError, match="alpha only apply with a teacher model; give teacher too"):
        FinetuneSettings.make(alpha=0.3)
    with pytest.raises(OptionError, match="alpha"):
        FinetuneSettings.make(teacher="t.keras", alpha=2.0)


def test_compare_settings_are_checked_once_before_any_model_is_named():
    from lightcompress.flows import CompareSettings

    settings = CompareSettings.make(batches=(1, 8), repeats=3, runtime="keras")
    assert settings.batches == (1, 8) and settings.runtime.name == "keras" and settings.runtime.threads == 2
    with pytest.raises(OptionError, match="int8=True needs calibration images from the training split"):
        CompareSettings.make(int8=True)
    with pytest.raises(OptionError, match="repeats"):
        CompareSettings.make(repeats=0)


def test_baseline_settings_are_checked_once():
    from lightcompress.flows import BaselineSettings

    prune = BaselineSettings.make("prune", target_params=0.5, alpha=0.3)
    assert prune.distillation.alpha == 0.3 and prune.holdout_size > 0 and prune.sizes
    with pytest.raises(OptionError, match="method=prune needs a budget; give target_params=F"):
        BaselineSettings.make("prune")
    with pytest.raises(OptionError, match="target_params does not apply to method=qat"):
        BaselineSettings.make("qat", target_params=0.5)
    with pytest.raises(OptionError, match="method='svd' is unknown"):
        BaselineSettings.make("svd", target_params=0.5)
