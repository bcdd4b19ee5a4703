"""Technique declarations: what a plugin may declare, and what slimkit refuses (with the plugin named)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from slimkit import hookimpl, hookspecs
from slimkit.errors import PluginError
from slimkit.techniques import KEY_WHEN_SET, STAGE_NAMES, NoConfig, Stage, Technique, TechniqueRegistry, config_key_dump


class GoodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = Field(default=1, description="How hard to try.")


class LooseConfig(BaseModel):
    level: int = Field(default=1, description="How hard to try.")


class UndocumentedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1
    mode: str = "a"
    documented: bool = Field(default=True, description="Fine.")


def declaration(**overrides: Any) -> dict[str, Any]:
    return {"name": "demo.shrink", "stage": "prune", "summary": "Shrink.", "consumes": ["toy"]} | overrides


class Declares:
    """A plugin that declares the given techniques (dicts or Technique objects)."""

    def __init__(self, *declarations: Any) -> None:
        self.declarations = declarations

    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        for d in self.declarations:
            register(d)


def refusal(registry: TechniqueRegistry, plugin: str, technique: Any) -> str:
    with pytest.raises(PluginError) as info:
        registry.register_for(plugin, "1.0")(technique)
    return str(info.value)


def test_registered_technique_is_tagged_with_its_plugin_and_version() -> None:
    registry = TechniqueRegistry()
    registry.register_for("demo", "1.2.3")(declaration(config=GoodConfig))
    technique = registry.get("demo.shrink")
    assert technique is not None
    assert (technique.plugin, technique.plugin_version) == ("demo", "1.2.3")
    assert technique.stage is Stage.PRUNE
    assert technique.config is GoodConfig
    assert "demo.shrink" in registry
    assert [t.name for t in registry.of_plugin("demo")] == ["demo.shrink"]


def test_a_technique_object_is_accepted_as_well_as_a_dict() -> None:
    registry = TechniqueRegistry()
    registry.register_for("demo", None)(Technique(**declaration(name="demo.a")))
    assert registry.get("demo.a") is not None
    assert registry.get("demo.a").plugin == "demo"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["shrink", "Demo.shrink", "demo.Shrink", "demo.", ".shrink", "demo.a.b", "de mo.x"])
def test_invalid_name_is_refused_naming_the_plugin(name: str) -> None:
    message = refusal(TechniqueRegistry(), "demo", declaration(name=name))
    assert message == (
        f"plugin 'demo' declared an invalid technique: name: {name!r} is not '<plugin>.<technique>' "
        "in lower case (e.g. 'onnx.quantize-dynamic')"
    )


def test_config_without_extra_forbid_is_refused() -> None:
    message = refusal(TechniqueRegistry(), "demo", declaration(config=LooseConfig))
    assert message == (
        "plugin 'demo' declared an invalid technique: config: "
        "LooseConfig must set model_config = ConfigDict(extra='forbid')"
    )


def test_config_with_undocumented_fields_is_refused() -> None:
    message = refusal(TechniqueRegistry(), "demo", declaration(config=UndocumentedConfig))
    assert message == (
        "plugin 'demo' declared an invalid technique: config: UndocumentedConfig fields need a description: level, mode"
    )


def test_config_that_is_not_a_model_is_refused() -> None:
    message = refusal(TechniqueRegistry(), "demo", declaration(config=dict))
    assert message.startswith("plugin 'demo' declared an invalid technique: config: ")


def test_empty_consumes_and_bad_relations_are_refused() -> None:
    assert refusal(TechniqueRegistry(), "demo", declaration(consumes=[])) == (
        "plugin 'demo' declared an invalid technique: consumes: name at least one format"
    )
    assert refusal(TechniqueRegistry(), "demo", declaration(after=["Quantise"])) == (
        "plugin 'demo' declared an invalid technique: after: 'Quantise' is neither a stage "
        "(distill, export, prune, quantize, train) nor a technique name"
    )


def test_unknown_declaration_field_and_stage_are_refused() -> None:
    message = refusal(TechniqueRegistry(), "demo", declaration(speed="fast", stage="compress"))
    assert message.startswith("plugin 'demo' declared an invalid technique: ")
    assert "stage: Input should be 'train', 'prune', 'distill', 'quantize' or 'export'" in message
    assert "speed: Extra inputs are not permitted" in message


def test_name_collision_between_two_plugins_names_both() -> None:
    registry = TechniqueRegistry()
    registry.register_for("first", "1")(declaration())
    with pytest.raises(PluginError) as info:
        registry.register_for("second", "2")(declaration(summary="Another."))
    assert str(info.value) == (
        "technique 'demo.shrink' is declared by both plugin 'first' and plugin 'second' "
        "(fix: uninstall one of them, or choose plugins with SLIMKIT_LOAD_PLUGINS)"
    )
    assert registry.get("demo.shrink").plugin == "first"  # type: ignore[union-attr]


def test_one_plugin_declaring_a_name_twice_is_told_so() -> None:
    registry = TechniqueRegistry()
    registry.register_for("demo", "1")(declaration())
    assert refusal(registry, "demo", declaration()) == "plugin 'demo' declares technique 'demo.shrink' twice"


def test_refused_plugin_is_not_left_registered(slimkit_plugins: Any) -> None:
    bad = Declares(declaration(name="demo.ok"), declaration(name="Bad"))
    with pytest.raises(PluginError, match=r"^plugin 'bad' declared an invalid technique: name: 'Bad' is not"):
        slimkit_plugins.register(bad, "bad")
    assert slimkit_plugins.pm.get_plugin("bad") is None
    assert "bad" not in slimkit_plugins.records
    assert slimkit_plugins.techniques.get("demo.ok") is None


def test_technique_built_inside_the_hook_is_refused_as_a_plugin_error(slimkit_plugins: Any) -> None:
    class BuildsItself:
        @hookimpl
        def register_techniques(self, register):  # type: ignore[no-untyped-def]
            register(Technique(**declaration(config=LooseConfig)))

    with pytest.raises(PluginError) as info:
        slimkit_plugins.register(BuildsItself(), "selfmade")
    assert str(info.value) == (
        "plugin 'selfmade' declared an invalid technique: config: "
        "LooseConfig must set model_config = ConfigDict(extra='forbid')"
    )
    assert slimkit_plugins.pm.get_plugin("selfmade") is None


def test_collision_through_plugins_keeps_the_first_plugin(slimkit_plugins: Any) -> None:
    slimkit_plugins.register(Declares(declaration(), declaration(name="demo.other")), "first")
    with pytest.raises(PluginError, match="declared by both plugin 'first' and plugin 'second'"):
        slimkit_plugins.register(Declares(declaration(name="demo.extra"), declaration()), "second")
    assert [t.name for t in slimkit_plugins.techniques.all()] == ["demo.other", "demo.shrink"]
    assert slimkit_plugins.techniques.get("demo.shrink").plugin == "first"
    assert slimkit_plugins.pm.get_plugin("second") is None
    assert slimkit_plugins.records["first"].techniques == ["demo.other", "demo.shrink"]


def test_registry_queries() -> None:
    registry = TechniqueRegistry()
    registry.register_for("a", "1")(declaration(name="a.q", stage="quantize"))
    registry.register_for("a", "1")(declaration(name="a.p"))
    registry.register_for("b", "1")(declaration(name="b.q", stage="quantize"))
    assert [t.name for t in registry.all()] == ["a.p", "a.q", "b.q"]
    assert [t.name for t in registry.for_stage(Stage.QUANTIZE)] == ["a.q", "b.q"]
    assert [t.name for t in registry.of_plugin("a")] == ["a.p", "a.q"]
    registry.drop_plugin("a")
    assert [t.name for t in registry.all()] == ["b.q"]


def test_relations_formats_and_description() -> None:
    t = Technique(**declaration(after=["train", "demo.first"], produces="onnx", config=GoodConfig))
    assert t.matches("demo.shrink") and t.matches("prune")
    assert not t.matches("quantize")
    assert t.output_format("toy") == "onnx"
    assert Technique(**declaration()).output_format("toy") == "toy"
    assert Technique(**declaration()).config is NoConfig
    described = t.describe()
    assert "config" not in described
    assert described["config_schema"]["properties"]["level"]["description"] == "How hard to try."
    assert described["stage"] == "prune"
    assert described["hardware"]["devices"] == ["cpu"]


def test_every_stage_has_a_hook_of_its_name() -> None:
    assert {s.value for s in Stage} == STAGE_NAMES
    for stage in STAGE_NAMES:
        assert callable(getattr(hookspecs, stage))


class _Grown(BaseModel):
    """A config that gained an option after steps were stored with it."""

    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(default=0.5, description="An original option.")
    extra_share: float = Field(default=0.0, description="Added later.", json_schema_extra=KEY_WHEN_SET)


def test_fields_added_later_are_left_out_of_step_keys_while_at_their_default() -> None:
    assert config_key_dump(_Grown()) == {"ratio": 0.5}  # the key of a step stored before the field existed
    assert config_key_dump(_Grown(ratio=0.5, extra_share=0.25)) == {"ratio": 0.5, "extra_share": 0.25}
    assert config_key_dump(_Grown(ratio=0.0)) == {"ratio": 0.0}  # unmarked fields stay at any value
