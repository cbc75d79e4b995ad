"""Our localstripe keeps its store in memory (localstripe itself pickles the whole store to disk
on every write, so a charge cost more with every object stored) and listens on 127.0.0.1 only."""
import socket
from typing import Any

import pytest

from adapters.stripe_gateway import StripeGateway
from embedded.stripe_server import LOCALSTRIPE_KEY, keep_in_memory


def test_the_store_writes_nothing_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    from localstripe import resources

    keep_in_memory()

    def no_file(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"localstripe opened {args[0]}")

    monkeypatch.setattr(resources, "open", no_file, raising=False)  # what the module's open() finds first
    store = resources.Store()
    store["cus_1"] = {"id": "cus_1"}
    del store["cus_1"]
    store.dump_to_disk()
    store.try_load_from_disk()
    assert store == {}


def test_lists_read_the_index_in_the_stores_order() -> None:
    from localstripe import resources

    keep_in_memory()

    class Thing(resources.StripeObject):
        object = "thing"

    store = resources.store
    saved = dict(store)
    try:
        store.clear()
        for key in ("thing:a", "other:a", "thing:b", "balance", "thing:c", "other:b"):
            store[key] = key
        del store["thing:b"]
        store["thing:b"] = "thing:b again"
        scanned = [value for key, value in store.items() if key.startswith("thing:")]  # localstripe's way
        assert Thing._api_list_all("/v1/things")._list == scanned == ["thing:a", "thing:c", "thing:b again"]
        with pytest.raises(resources.UserError):
            Thing._api_list_all("/v1/things", colour="red")
    finally:
        store.clear()
        for key, value in saved.items():
            store[key] = value


def test_the_server_keeps_its_objects_and_charges(localstripe: Any) -> None:
    gateway = StripeGateway(LOCALSTRIPE_KEY, localstripe.api_base)
    customers = [gateway.create_customer(name=f"Client {i}", payer_label=f"client:{i}") for i in range(30)]
    method = gateway.attach_card(customers[0], "4242424242424242")
    intent = gateway.create_intent(amount=1234, customer_id=customers[0], payment_method=method,
                                   invoice_id=1, idempotency_key="invoice-1-attempt-1")
    assert gateway.confirm_intent(intent).status == "succeeded"
    assert all(gateway.customer_exists(c) for c in customers)


def test_the_server_listens_on_ipv4_loopback_only(localstripe: Any) -> None:
    with socket.create_connection(("127.0.0.1", localstripe.port), timeout=2):
        pass
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(("::1", localstripe.port))
        except ConnectionRefusedError:
            return
        except OSError as exc:  # no IPv6 loopback on this machine
            pytest.skip(f"::1 unreachable: {exc}")
        pytest.fail("localstripe answers on ::1: it listens beyond 127.0.0.1")
