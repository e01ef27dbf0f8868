"""moto's server, with the atomicity the real services guarantee.

moto serves requests on threads but does not lock its in-memory state, so under load it breaks
promises that AWS keeps and our code relies on:
- DynamoDB: a conditional write reads, checks and writes without a lock, so two concurrent
  claims can both succeed and two concurrent `ADD`s on one item can lose one (a run's counters);
- SQS: DeleteMessage rebuilds the queue's message list without the lock SendMessage takes, so
  a message sent during a delete is lost, and a receive's move to the DLQ races the same list.
The tests then fail on moto's races, not on ours. This wrapper serialises each DynamoDB call and
each SQS queue's list changes (a long poll still releases the queue while it waits), then runs
moto's own server unchanged. It refuses to start if moto no longer has what it patches.
"""

import functools
import sys
import threading

from moto import server
from moto.dynamodb.models import DynamoDBBackend
from moto.sqs.models import Queue, SQSBackend

_DYNAMODB = threading.RLock()


def _under(lock_of):
    def wrap(method):
        @functools.wraps(method)
        def locked(self, *args, **kwargs):
            with lock_of(self, *args, **kwargs):
                return method(self, *args, **kwargs)

        return locked

    return wrap


def _require(cls, name):
    method = getattr(cls, name, None)
    if not callable(method):
        sys.exit(f"moto_server.py: {cls.__name__}.{name} is gone; re-check the patches for this moto")
    return method


def patch():
    # Every DynamoDB backend call, one at a time: each is quick, and DynamoDB's writes are atomic.
    for name, method in list(vars(DynamoDBBackend).items()):
        if callable(method) and not name.startswith("_"):
            setattr(DynamoDBBackend, name, _under(lambda self, *a, **k: _DYNAMODB)(method))
    _require(DynamoDBBackend, "update_item")

    # A queue's list under its own condition lock (an RLock: add_message and the long poll's wait
    # take it too; the wait releases it).
    Queue.delete_message = _under(lambda self, *a, **k: self._messages_lock)(
        _require(Queue, "delete_message")
    )

    def queue_lock(backend, queue_name, *a, **k):
        return backend.get_queue(queue_name)._messages_lock

    for name in ("receive_message", "purge_queue", "change_message_visibility"):
        setattr(SQSBackend, name, _under(queue_lock)(_require(SQSBackend, name)))
    probe = Queue("moto-server-probe", "us-east-1", "123456789012")
    if not hasattr(probe, "_messages_lock"):
        sys.exit("moto_server.py: Queue._messages_lock is gone; re-check the patches for this moto")


if __name__ == "__main__":
    patch()
    server.main(sys.argv[1:])
