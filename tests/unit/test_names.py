"""One place names things: the names other code and operators rely on stay as they were."""

from pathlib import Path

from topology.names import Names
from topology.settings import Settings


def test_the_names_of_an_application() -> None:
    names = Names("ledger")
    assert names.partition_actor(3) == "ledger-partition-3"
    assert names.coordinator_actor == "ledger-coordinator"
    assert names.shadow_actor(2) == "ledger-rebuild-2"
    assert names.partition_txn(3) == "ledger-3"
    assert names.coordinator_txn == "ledger-coordinator"
    assert names.shadow_txn(2) == "ledger-rebuild-2"
    assert names.commands_group == "ledger"
    assert names.group("restore") == "ledger-restore"
    one, two = names.group("audit", unique=True), names.group("audit", unique=True)
    assert one.startswith("ledger-audit-") and one != two


def test_the_state_dir_is_per_application() -> None:
    settings = Settings.resolve(app_id="ledger", state_dir="/var/lib/el", environ={})
    assert Names.of(settings).ids_dir(settings, 1) == Path("/var/lib/el/ledger/ids-1")


def test_the_prefixes_acls_grant_by_cover_the_names() -> None:
    names = Names("ledger")
    assert names.prefix == "ledger-"
    for name in (names.partition_txn(0), names.coordinator_txn, names.shadow_txn(1)):
        assert name.startswith(names.prefix)
    assert names.group("client", unique=True).startswith(names.group_prefix("client"))
    assert not names.group("clientele").startswith(names.group_prefix("client"))


def test_member_zero_is_the_writer_and_standbys_have_names_and_id_stores_of_their_own() -> None:
    names = Names("app")
    settings = Settings.resolve(app_id="app", state_dir="/s", environ={})
    assert names.member_actor(3, 0) == names.partition_actor(3) == "app-partition-3"
    assert names.member_actor(3, 1) == "app-partition-3.1"
    assert names.ids_dir(settings, 3, 0) == names.ids_dir(settings, 3)
    assert names.ids_dir(settings, 3, 1) != names.ids_dir(settings, 3)
