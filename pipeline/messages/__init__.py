"""What leaves the process and what a consumer reads: the message types, their JSON Schemas and
encoding, the sinks with the on-disk spool, and the reference consumer.

Needs neither torch nor OpenCV (a test holds it to that), so a team consuming the links from
Kafka can use it alone: `pipeline.messages.consumer.LinkConsumer`.
"""

from __future__ import annotations
