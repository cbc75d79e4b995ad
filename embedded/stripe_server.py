"""localstripe: a stateful Stripe-compatible server on loopback, for runs without STRIPE_API_KEY.

localstripe (1.15.10) pickles its whole store to /tmp/localstripe.pickle on every store write
and after every POST, so a charge costs more with every object stored (about 11 ms after 200
charges, 200 ms after 1,400), and every localstripe on the machine writes the same file. We
start it from scratch anyway: here it runs from this module (`python -m embedded.stripe_server`),
which turns that dump into a no-op (the state lives in memory, for the process's life) and binds
it to 127.0.0.1 only (localstripe's own `start` binds `::`, every interface). Its lists also
scanned the whole store, a charge's refunds several times a request: they read an index here.
"""
import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from embedded.processes import free_port, start_process, stop_process, wait_for_port

LOCALSTRIPE_KEY = "sk_test_localstripe"
HOST = "127.0.0.1"


@dataclass
class LocalStripe:
    api_base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_process(self.process)


def start_localstripe(log_dir: Path, port: int | None = None) -> LocalStripe:
    port = port or free_port()
    log = log_dir / "localstripe.log"
    process = start_process([sys.executable, "-m", "embedded.stripe_server", "--port", str(port)], log)
    wait_for_port(port, process, "localstripe", log)
    return LocalStripe(f"http://{HOST}:{port}", port, process, log)


def keep_in_memory() -> None:
    """Make localstripe's store never write itself to disk (nor read a previous dump), and list
    objects of one kind from an index instead of a scan of the whole store."""
    from localstripe.errors import UserError
    from localstripe.resources import List, Store, StripeObject, store

    def no_dump(self: Store) -> None:
        return None

    def set_item(self: Store, key: str, value: object) -> None:
        dict.__setitem__(self, key, value)
        kind, colon, _ = key.partition(":")
        if colon:
            _by_kind(self).setdefault(kind, {})[key] = value

    def del_item(self: Store, key: str) -> None:
        dict.__delitem__(self, key)
        kind, colon, _ = key.partition(":")
        if colon:
            del _by_kind(self)[kind][key]

    def clear(self: Store) -> None:
        dict.clear(self)
        _by_kind(self).clear()

    def list_all(cls: type[StripeObject], url: str, limit: object = None, starting_after: object = None,
                 **kwargs: object) -> List:
        # localstripe's own, but from the index: it scans every object stored for every list,
        # and a charge lists its refunds several times a request (so a charge cost more with
        # every object stored, even in memory).
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listed = List(url, limit=limit, starting_after=starting_after)
        listed._list = list(_by_kind(store).get(cls.object, {}).values())
        return listed

    Store.dump_to_disk = no_dump
    Store.try_load_from_disk = no_dump
    Store.__setitem__ = set_item
    Store.__delitem__ = del_item
    Store.clear = clear
    StripeObject._api_list_all = classmethod(list_all)
    for key, value in list(store.items()):  # objects stored at import (none so far), indexed too
        set_item(store, key, value)


def _by_kind(store: dict[str, object]) -> dict[str, dict[str, object]]:
    """The store's objects by kind ("charge", "refund"…), each kind in the store's own order."""
    index: dict[str, dict[str, object]] | None = getattr(store, "by_kind", None)
    if index is None:
        index = {}
        store.by_kind = index  # type: ignore[attr-defined]
    return index


def serve(port: int) -> None:
    """localstripe's own application on HOST:port, its store in memory only; until SIGTERM."""
    import logging
    import socket

    from aiohttp import web

    keep_in_memory()
    from localstripe.server import app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    access = logging.getLogger("aiohttp.access")  # one line a request in the log, as localstripe does
    access.setLevel(logging.DEBUG)
    access.addHandler(logging.StreamHandler())
    web.run_app(app, sock=sock, access_log=access)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="localstripe on 127.0.0.1, in memory only")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
