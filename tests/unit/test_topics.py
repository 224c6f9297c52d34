"""Topic names, configs and the check of existing topics."""

import pytest

from topology.idempotency import MAX_CLOCK_SKEW_MS, replies_retention_ms
from topology.settings import DAY_MS
from topology.topics import TopicKind, TopicLayout, TopicSpec, growth, mismatches

LAYOUT = TopicLayout("shop", 6)


def spec(kind: TopicKind) -> TopicSpec:
    return next(s for s in LAYOUT.specs() if s.name == LAYOUT.name(kind))


def test_names_are_app_dot_kind() -> None:
    assert LAYOUT.name(TopicKind.COMMANDS) == "shop.commands"
    assert [s.name for s in LAYOUT.specs()] == [
        "shop.commands",
        "shop.replies",
        "shop.events",
        "shop.snapshots",
        "shop.state",
        "shop.dlq",
        "shop.internal",
    ]


def test_every_topic_has_the_partition_count_and_create_time() -> None:
    for topic in LAYOUT.specs():
        assert topic.partitions == 6
        assert topic.config["message.timestamp.type"] == "CreateTime"


def test_events_and_dlq_are_kept_forever() -> None:
    for kind in (TopicKind.EVENTS, TopicKind.DLQ):
        config = spec(kind).config
        assert config["cleanup.policy"] == "delete"
        assert config["retention.ms"] == "-1"
        assert config["retention.bytes"] == "-1"


def test_snapshots_and_state_are_compacted() -> None:
    for kind in (TopicKind.SNAPSHOTS, TopicKind.STATE):
        config = spec(kind).config
        assert config["cleanup.policy"] == "compact"
        assert int(config["segment.ms"]) > 0
        assert int(config["min.compaction.lag.ms"]) >= 0
        assert "retention.ms" not in config


def test_commands_expire() -> None:
    assert spec(TopicKind.COMMANDS).config["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert spec(TopicKind.COMMANDS).config["cleanup.policy"] == "delete"


def test_replies_are_the_id_memorys_changelog_kept_past_the_window() -> None:
    config = spec(TopicKind.REPLIES).config
    assert config["cleanup.policy"] == "compact,delete"
    assert int(config["retention.ms"]) == replies_retention_ms(DAY_MS)
    assert int(config["retention.ms"]) > DAY_MS + MAX_CLOCK_SKEW_MS
    short = TopicLayout("app", 2, idempotency_window_ms=60_000).specs()
    (replies,) = [s for s in short if s.name == "app.replies"]
    assert replies.config["retention.ms"] == str(replies_retention_ms(60_000))


def test_a_replies_topic_kept_shorter_than_the_window_is_reported() -> None:
    replies = spec(TopicKind.REPLIES)
    actual = {**replies.config, "retention.ms": str(3600 * 1000)}
    (problem,) = mismatches(replies, replies.partitions, actual)
    assert "idempotency window" in problem
    assert mismatches(replies, replies.partitions, {**replies.config, "retention.ms": "-1"}) == []


def test_specs_do_not_share_config_dicts() -> None:
    first, second = LAYOUT.specs(), LAYOUT.specs()
    first[3].config["cleanup.policy"] = "delete"
    assert second[3].config["cleanup.policy"] == "compact"
    assert spec(TopicKind.STATE).config["cleanup.policy"] == "compact"


@pytest.mark.parametrize("kind", list(TopicKind))
def test_a_topic_created_from_its_spec_matches(kind: TopicKind) -> None:
    topic = spec(kind)
    assert mismatches(topic, topic.partitions, topic.config) == []


def test_wrong_partition_count() -> None:
    topic = spec(TopicKind.COMMANDS)
    (problem,) = mismatches(topic, 3, topic.config)
    assert "shop.commands" in problem
    assert "3 partitions" in problem


def test_wrong_cleanup_policy() -> None:
    topic = spec(TopicKind.SNAPSHOTS)
    (problem,) = mismatches(topic, 6, {**topic.config, "cleanup.policy": "compact,delete"})
    assert "cleanup.policy" in problem


def test_missing_cleanup_policy_counts_as_kafkas_default() -> None:
    assert mismatches(spec(TopicKind.COMMANDS), 6, {}) == []
    assert mismatches(spec(TopicKind.STATE), 6, {}) != []


def test_policy_order_and_spaces_do_not_matter() -> None:
    topic = TopicSpec("t", 1, {"cleanup.policy": "compact,delete"})
    assert mismatches(topic, 1, {"cleanup.policy": "delete, compact"}) == []


def test_events_that_would_expire_are_reported() -> None:
    topic = spec(TopicKind.EVENTS)
    (problem,) = mismatches(topic, 6, {"cleanup.policy": "delete", "retention.ms": "604800000"})
    assert "retention.ms" in problem


def test_all_problems_are_reported() -> None:
    topic = spec(TopicKind.EVENTS)
    assert len(mismatches(topic, 1, {"cleanup.policy": "compact"})) == 3


def test_the_control_topic_is_one_compacted_partition() -> None:
    control = LAYOUT.control_spec()
    assert (control.name, control.partitions) == ("shop.control", 1)
    assert control.config["cleanup.policy"] == "compact"
    assert LAYOUT.control not in {s.name for s in LAYOUT.specs()}


def test_snapshot_generations() -> None:
    assert LAYOUT.snapshots() == LAYOUT.snapshots(0) == "shop.snapshots"
    assert LAYOUT.snapshots(3) == "shop.snapshots.g3"
    g3 = LAYOUT.snapshot_spec(3)
    assert (g3.name, g3.partitions) == ("shop.snapshots.g3", 6)
    assert g3.config == spec(TopicKind.SNAPSHOTS).config
    with pytest.raises(ValueError):
        LAYOUT.snapshots(-1)


def test_replies_have_one_partition_per_data_partition_and_lane() -> None:
    layout = TopicLayout("shop", 3, reply_lanes=2)
    specs = {s.name: s.partitions for s in layout.specs()}
    assert specs["shop.replies"] == 6
    assert specs["shop.events"] == specs["shop.commands"] == 3
    assert [layout.reply_partitions(lane) for lane in (0, 1)] == [[0, 2, 4], [1, 3, 5]]
    every = sorted(p for lane in (0, 1) for p in layout.reply_partitions(lane))
    assert every == list(range(6))  # each replies partition: one writer, one lane


def test_a_snapshot_generation_grown_past_the_layout_is_usable_other_topics_are_not() -> None:
    generation = LAYOUT.snapshot_spec(2)
    assert mismatches(generation, 8, generation.config) == []
    assert mismatches(generation, 4, generation.config) != []
    commands = spec(TopicKind.COMMANDS)
    assert mismatches(commands, 8, commands.config) != []


GROWN = TopicLayout("shop", 2, reply_lanes=3)


def _existing(partitions: int, *generations: int) -> dict[str, int]:
    layout = TopicLayout("shop", partitions, reply_lanes=3)
    found = {s.name: s.partitions for s in layout.specs()}
    found |= {layout.snapshots(g): partitions for g in generations}
    return found | {layout.control: 1, "shopping.commands": 1, "other.events": 9}


def test_growth_grows_every_per_partition_topic_and_generation_not_control() -> None:
    wanted = growth(GROWN, _existing(2, 1, 3), 4)
    assert wanted == {
        **{GROWN.name(k): 4 for k in TopicKind if k is not TopicKind.REPLIES},
        GROWN.name(TopicKind.REPLIES): 12,  # p * lanes + lane: the new p are the new indices
        "shop.snapshots.g1": 4,
        "shop.snapshots.g3": 4,
    }


def test_growth_is_idempotent_and_finishes_a_partial_one() -> None:
    assert growth(GROWN, _existing(4, 1), 4) == {}
    partial = _existing(2, 1) | {"shop.commands": 4, "shop.replies": 12}
    assert growth(GROWN, partial, 4) == {
        t: 4 for t in ("shop.dlq", "shop.events", "shop.internal", "shop.snapshots",
                       "shop.snapshots.g1", "shop.state")
    }  # fmt: skip


def test_growth_refuses_to_shrink_and_an_undeployed_application() -> None:
    with pytest.raises(ValueError, match=r"shop\.commands has 4.*never shrinks"):
        growth(GROWN, _existing(4), 2)
    with pytest.raises(ValueError, match=r"not deployed: no topic shop\.commands"):
        growth(GROWN, {k: v for k, v in _existing(2).items() if k != "shop.commands"}, 4)


def test_generation_of_names_only_snapshot_generations() -> None:
    assert GROWN.generation_of("shop.snapshots.g12") == 12
    for other in (
        "shop.snapshots",
        "shop.snapshots.g0",
        "shop.snapshots.g1x",
        "shopx.snapshots.g1",
    ):
        assert GROWN.generation_of(other) is None
