"""Tests of headrace.sdk.options: parsing, views, unknown flags, validation, pickling.

Options classes defined here are registered for the whole test session, so
their flags use a ``tst_`` prefix and unknown flags a ``zz_`` prefix, which no
other code declares.
"""
import argparse
import logging
import os
import pickle

import cloudpickle
import pytest

from headrace.options.pipeline_options import (
    DirectOptions,
    HeadraceOptions,
    OptionsError,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
)
from headrace.sdk import options as sdk_options


class TstInputOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--tst_input", default="in.txt")
        parser.add_argument("--tst_count", type=int, default=1)
        parser.add_argument("--tst_tag", action="append", default=None)


class TstOtherInputOptions(PipelineOptions):
    """Declares the same flag as TstInputOptions with another default, as unrelated tests do."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--tst_input", default="other.txt")


class TstRequiredOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--tst_required", required=True)


def test_defaults():
    options = PipelineOptions([])
    assert options.runner is None
    assert options.streaming is False
    assert options.parallelism is None
    assert options.max_parallelism == 128
    assert options.quiet is False
    assert options.job_name is None
    assert options.save_main_session is False


def test_parsing_forms():
    options = PipelineOptions(["--runner", "multiprocess", "--streaming", "--parallelism=4",
                               "--max_parallelism", "64", "--quiet", "--job_name=nightly",
                               "--save_main_session"])
    standard = options.view_as(StandardOptions)
    assert (standard.runner, standard.streaming) == ("multiprocess", True)
    headrace = options.view_as(HeadraceOptions)
    assert (headrace.parallelism, headrace.max_parallelism) == (4, 64)
    assert (headrace.quiet, headrace.job_name) == (True, "nightly")
    assert options.view_as(SetupOptions).save_main_session is True
    assert options.view_as(DirectOptions).parallelism == 4


def test_runner_is_parsed_like_beam():
    beam_options = pytest.importorskip("apache_beam.options.pipeline_options")
    for argv in ([], ["--runner=DirectRunner"], ["--runner", "x", "--streaming"]):
        beam = beam_options.PipelineOptions(argv).view_as(beam_options.StandardOptions)
        ours = PipelineOptions(argv).view_as(StandardOptions)
        assert (ours.runner, ours.streaming) == (beam.runner, beam.streaming)


def test_every_option_is_visible_from_every_view():
    options = StandardOptions(["--parallelism=3", "--tst_input=a"])
    assert options.parallelism == 3
    assert options.tst_input == "a"
    assert options.view_as(SetupOptions).runner is None


def test_views_share_values():
    options = PipelineOptions(["--runner=direct"])
    standard = options.view_as(StandardOptions)
    headrace = options.view_as(HeadraceOptions)
    standard.streaming = True
    headrace.parallelism = 2
    assert options.streaming is True and headrace.streaming is True
    assert standard.parallelism == 2 and options.view_as(DirectOptions).parallelism == 2
    options.runner = "multiprocess"
    assert standard.runner == "multiprocess"
    assert isinstance(standard, StandardOptions) and isinstance(headrace, HeadraceOptions)


def test_kwargs_override_flags():
    options = PipelineOptions(["--runner=a", "--parallelism=2"], runner="b", quiet=True)
    assert options.view_as(StandardOptions).runner == "b"
    assert options.parallelism == 2
    assert options.quiet is True


def test_unknown_kwargs_are_kept():
    options = PipelineOptions([], zz_custom=5)
    assert options.zz_custom == 5
    options.zz_custom = 6
    assert options.get_all_options(retain_unknown_options=True)["zz_custom"] == 6
    assert "zz_custom" not in options.get_all_options()


def test_unknown_flags_are_kept_in_order_for_the_users_own_parser():
    argv = ["--zz_input", "gs://in", "--streaming", "--zz_output=out", "-v", "positional"]
    options = PipelineOptions(argv)
    assert options.streaming is True
    assert options.unknown_flags() == ["--zz_input", "gs://in", "--zz_output=out", "-v",
                                       "positional"]
    parser = argparse.ArgumentParser()
    parser.add_argument("--zz_input")
    parser.add_argument("--zz_output")
    known, rest = parser.parse_known_args(options.unknown_flags())
    assert (known.zz_input, known.zz_output, rest) == ("gs://in", "out", ["-v", "positional"])


@pytest.mark.parametrize("argv", [
    ["--zz_a=1", "--zz_b", "--zz_c", "v"],
    ["-v"],
    ["-v", "x", "--zz_d"],
    ["pos", "--zz-e", "--", "--zz_f"],
    ["--zz_g", "1", "--zz_g", "2"],
    ["--zz_h=", "--runner=r", "--streaming"],
])
def test_retained_unknown_options_match_beam(argv):
    beam_options = pytest.importorskip("apache_beam.options.pipeline_options")
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    beam = beam_options.PipelineOptions(argv).get_all_options(
        drop_default=True, retain_unknown_options=True)
    ours = PipelineOptions(argv).get_all_options(drop_default=True, retain_unknown_options=True)
    assert ours == beam


def test_get_all_options():
    options = PipelineOptions(["--parallelism=2", "--zz_x=1"])
    everything = options.get_all_options()
    assert everything["parallelism"] == 2 and everything["runner"] is None
    assert "zz_x" not in everything
    assert options.get_all_options(drop_default=True) == {"parallelism": 2}
    assert options.view_as(StandardOptions).get_all_options(current_only=True) == {
        "runner": None, "streaming": False}
    assert set(options.view_as(DirectOptions).get_all_options(current_only=True)) == {
        "parallelism", "max_parallelism", "quiet", "job_name"}


@pytest.mark.no_pipeline  # it defines an options class: a second run would see it already
def test_class_defined_after_the_options_sees_the_flags():
    options = PipelineOptions(["--tst_late=7", "--streaming"])
    assert options.unknown_flags() == ["--tst_late=7"]

    class TstLateOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--tst_late", type=int)

    assert options.view_as(TstLateOptions).tst_late == 7
    assert options.unknown_flags() == []


def test_values_survive_a_reparse():
    options = PipelineOptions(["--tst_tag=a"])
    tags = options.view_as(TstInputOptions).tst_tag
    tags.append("b")

    class TstReparseOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--tst_reparse")

    assert options.view_as(TstInputOptions).tst_tag == ["a", "b"]


def test_each_view_reads_its_own_declaration_of_a_shared_flag():
    options = PipelineOptions([])
    assert options.view_as(TstInputOptions).tst_input == "in.txt"
    assert options.view_as(TstOtherInputOptions).tst_input == "other.txt"
    given = PipelineOptions(["--tst_input=x"])
    assert given.view_as(TstInputOptions).tst_input == "x"
    assert given.view_as(TstOtherInputOptions).tst_input == "x"


def test_required_option_is_enforced_only_by_its_views():
    options = PipelineOptions([])
    assert options.view_as(StandardOptions).runner is None
    with pytest.raises(OptionsError, match="TstRequiredOptions requires the option --tst_required"):
        options.view_as(TstRequiredOptions)
    assert PipelineOptions(["--tst_required=1"]).view_as(TstRequiredOptions).tst_required == "1"
    assert TstRequiredOptions([], tst_required="k").tst_required == "k"


def test_broken_declaration_fails_where_the_class_is_defined():
    with pytest.raises(OptionsError, match=r"TstBroken._add_argparse_args: .*--tst_dup"):
        class TstBroken(PipelineOptions):
            @classmethod
            def _add_argparse_args(cls, parser):
                parser.add_argument("--tst_dup")
                parser.add_argument("--tst_dup")

    assert PipelineOptions([]).unknown_flags() == []


@pytest.mark.parametrize("argv, option", [
    (["--parallelism", "0"], "--parallelism"),
    (["--parallelism=-2"], "--parallelism"),
    (["--parallelism=abc"], "--parallelism"),
    (["--parallelism=1.5"], "--parallelism"),
    (["--max_parallelism=0"], "--max_parallelism"),
])
def test_bad_flag_values(argv, option):
    with pytest.raises(OptionsError, match=f"argument {option}: must be a positive integer, got"):
        PipelineOptions(argv)


def test_bad_flag_value_of_a_user_option():
    with pytest.raises(OptionsError, match="argument --tst_count: invalid int value: 'x'"):
        PipelineOptions(["--tst_count=x"])


@pytest.mark.parametrize("name, value", [
    ("parallelism", 0), ("parallelism", -1), ("parallelism", "many"), ("parallelism", True),
    ("parallelism", 2.5), ("max_parallelism", 0),
])
def test_bad_assigned_values(name, value):
    message = f"option '{name}': must be a positive integer, got {value!r}"
    with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        PipelineOptions([], **{name: value})
    options = PipelineOptions([])
    with pytest.raises(OptionsError, match=f"option '{name}'"):
        setattr(options.view_as(HeadraceOptions), name, value)
    assert getattr(options, name) in (None, 128)


def test_assigned_values_are_converted():
    options = PipelineOptions([], parallelism="3")
    assert options.parallelism == 3
    options.parallelism = None
    assert options.parallelism is None


def test_resolved_parallelism():
    assert HeadraceOptions(["--parallelism=5"]).resolved_parallelism() == 5
    assert HeadraceOptions([]).resolved_parallelism() == min(os.cpu_count() or 1, 128)
    assert HeadraceOptions([], max_parallelism=1).resolved_parallelism() == 1
    with pytest.raises(OptionsError, match=r"--parallelism \(8\) cannot exceed --max_parallelism "
                                           r"\(4\)"):
        HeadraceOptions(["--parallelism=8", "--max_parallelism=4"]).resolved_parallelism()


def test_flags_must_be_a_list_of_strings():
    with pytest.raises(TypeError, match="not the single string '--streaming'"):
        PipelineOptions("--streaming")
    with pytest.raises(TypeError, match=r"flags must be strings, got 4 \(int\)"):
        PipelineOptions(["--parallelism", 4])


def test_flags_default_to_sys_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog.py", "--streaming", "--zz_mine=1"])
    options = PipelineOptions()
    assert options.streaming is True
    assert options.unknown_flags() == ["--zz_mine=1"]


def test_unknown_attribute_errors():
    options = PipelineOptions([])
    with pytest.raises(AttributeError, match="PipelineOptions has no option 'paralelism'; did you "
                                             "mean 'parallelism'"):
        options.paralelism
    with pytest.raises(AttributeError, match="StandardOptions has no option 'runer'"):
        options.view_as(StandardOptions).runer = "x"


def test_view_as_requires_an_options_class():
    with pytest.raises(TypeError, match=r"takes a PipelineOptions subclass, got <class 'dict'>"):
        PipelineOptions([]).view_as(dict)


def test_from_dictionary():
    options = StandardOptions.from_dictionary({
        "runner": "direct", "streaming": True, "quiet": False, "parallelism": 3,
        "job_name": None, "tst_tag": ["a", "b"], "zz_conf": {"k": 1}})
    assert isinstance(options, StandardOptions)
    assert (options.runner, options.streaming, options.quiet) == ("direct", True, False)
    assert options.parallelism == 3 and options.job_name is None
    assert options.view_as(TstInputOptions).tst_tag == ["a", "b"]
    assert options.unknown_flags() == ['--zz_conf={"k": 1}']


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickling_keeps_values_and_views(dumps):
    options = PipelineOptions(["--runner=direct", "--parallelism=2", "--zz_x", "1"], quiet=True)
    view = options.view_as(HeadraceOptions)
    view.job_name = "j"
    copy = pickle.loads(dumps(view))
    assert type(copy) is HeadraceOptions
    assert (copy.runner, copy.parallelism, copy.quiet, copy.job_name) == ("direct", 2, True, "j")
    assert copy.unknown_flags() == ["--zz_x", "1"]
    copy.view_as(StandardOptions).streaming = True
    assert copy.streaming is True and options.streaming is False


def test_unpickled_options_keep_values_of_classes_the_worker_does_not_know():
    options = PipelineOptions(["--tst_worker=9"])

    class TstWorkerOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--tst_worker", type=int)

    state = pickle.dumps(options)
    # A worker that never imported the class: drop its declaration, then unpickle.
    del sdk_options._declared[sdk_options._class_key(TstWorkerOptions)]
    sdk_options._generation += 1
    copy = pickle.loads(state)
    assert copy.tst_worker == 9


def test_repr_lists_the_views_options():
    assert repr(StandardOptions(["--runner=r"])) == "StandardOptions(runner='r', streaming=False)"
    assert "parallelism=None" in repr(PipelineOptions([]))
